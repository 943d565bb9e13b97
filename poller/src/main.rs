use clap::Parser;
use ocelot_poller::Settings;

fn main() -> anyhow::Result<()> {
    // before any thread exists (see its safety note)
    ocelot_core::git::set_network_timeouts();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::parse();
    ocelot_core::telemetry::init(settings.log.log_format);
    let health = settings.health.bind().await?;
    let result =
        ocelot_poller::run(settings, health, ocelot_core::shutdown::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!("{error:#}");
    }
    result
}
