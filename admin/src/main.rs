use clap::Parser;
use ocelot_admin::Settings;

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
    match &settings.command {
        Some(ocelot_admin::AdminCommand::Token(command)) => {
            return ocelot_admin::token_command(&settings, command).await;
        }
        Some(ocelot_admin::AdminCommand::RotateKey { new_key_file }) => {
            return ocelot_admin::rotate_key(&settings, new_key_file).await;
        }
        None => {}
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let result =
        ocelot_admin::run(settings, listener, ocelot_core::shutdown::shutdown_signal()).await;
    if let Err(error) = &result {
        tracing::error!("{error:#}");
    }
    result
}
