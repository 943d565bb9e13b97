//! The attempt log's writer when no server keeps the log (`ocelot exec`): every event goes,
//! in order, to a channel (whoever shows the build reads it); a flush or the result is
//! answered once what came before was handed over.

use super::Finished;
use super::writer::Command;
use ocelot_core::events::BuildEvent;
use tokio::sync::mpsc;

/// Runs until the attempt log is dropped. A reader that went away loses the events; the
/// build goes on (and its result is still answered).
pub(super) async fn run(mut commands: mpsc::Receiver<Command>, events: mpsc::Sender<BuildEvent>) {
    while let Some(command) = commands.recv().await {
        match command {
            Command::Event(event) => {
                let _ = events.send(event).await;
            }
            Command::Flush(answer) => {
                let _ = answer.send(());
            }
            Command::Finish(result, answer) => {
                let _ = events.send(result).await;
                let _ = answer.send(Finished::Recorded);
            }
        }
    }
}
