use clap::Parser;
use ocelot_hookhandler::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    ocelot_core::telemetry::init(settings.log.log_format);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let result =
        ocelot_hookhandler::run(settings, listener, ocelot_core::shutdown::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!("{error:#}");
    }
    result
}
