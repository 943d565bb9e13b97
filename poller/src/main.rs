use clap::Parser;
use ocelot_poller::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    ocelot_core::telemetry::init(settings.log.log_format);
    let result = ocelot_poller::run(settings, ocelot_core::shutdown::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!("{error:#}");
    }
    result
}
