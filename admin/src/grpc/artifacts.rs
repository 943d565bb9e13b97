//! Artifact RPCs: a build's artifacts (from Postgres), and one artifact's bytes streamed
//! from the object storage in chunks, after a first message that describes it.

use crate::error::AdminError;
use crate::state::AppState;
use bytes::BytesMut;
use futures::StreamExt;
use ocelot_core::auth::RepoScope;
use ocelot_core::model::unix_ms;
use ocelot_core::storage::StorageError;
use ocelot_core::store::Artifact;
use ocelot_proto::v1 as pb;
use std::pin::Pin;
use tonic::{Response, Status};

/// Bytes per streamed message (well under gRPC's 4 MiB message limit).
const CHUNK_BYTES: usize = 256 * 1024;

pub(crate) type ChunkStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::ArtifactChunk, Status>> + Send + 'static>>;

fn to_pb(artifact: &Artifact) -> pb::Artifact {
    pb::Artifact {
        path: artifact.path.clone(),
        stage: artifact.stage.clone(),
        size: artifact.size,
        sha256: artifact.sha256.clone(),
        attempt: artifact.attempt.get(),
        created_at_ms: unix_ms(artifact.created_at),
        expires_at_ms: artifact.expires_at.map(unix_ms).unwrap_or_default(),
    }
}

fn storage_status(error: &StorageError) -> Status {
    match error {
        StorageError::NotFound(_) => Status::not_found(format!(
            "{error} (the artifact's object is gone from the storage)"
        )),
        _ => Status::unavailable(error.to_string()),
    }
}

pub(super) async fn list(
    state: &AppState,
    scope: &RepoScope,
    request: pb::ListArtifactsRequest,
) -> Result<Response<pb::ListArtifactsResponse>, Status> {
    let build = super::scope::build(state, scope, request.build_id.into()).await?;
    let artifacts = state
        .store
        .artifacts(build.id)
        .await
        .map_err(AdminError::from)?;
    Ok(Response::new(pb::ListArtifactsResponse {
        artifacts: artifacts.iter().map(to_pb).collect(),
    }))
}

pub(super) async fn get(
    state: &AppState,
    scope: &RepoScope,
    request: pb::GetArtifactRequest,
) -> Result<Response<ChunkStream>, Status> {
    let build = super::scope::build(state, scope, request.build_id.into()).await?;
    let artifacts = state
        .store
        .artifacts(build.id)
        .await
        .map_err(AdminError::from)?;
    let Some(artifact) = artifacts.into_iter().find(|a| a.path == request.path) else {
        return Err(Status::not_found(format!(
            "build {} has no artifact `{}` (`ocelot artifacts {}` lists them)",
            build.id, request.path, build.id
        )));
    };
    let reader = state
        .storage
        .get(&artifact.object_key)
        .await
        .map_err(|e| storage_status(&e))?;
    let head = futures::stream::once(futures::future::ready(Ok(pb::ArtifactChunk {
        artifact: Some(to_pb(&artifact)),
        data: Vec::new(),
    })));
    let body = rechunk(reader.stream);
    Ok(Response::new(Box::pin(head.chain(body))))
}

/// The storage's pieces (whatever their sizes) as messages of about [`CHUNK_BYTES`].
fn rechunk(
    stream: futures::stream::BoxStream<'static, Result<bytes::Bytes, StorageError>>,
) -> impl futures::Stream<Item = Result<pb::ArtifactChunk, Status>> + Send + 'static {
    futures::stream::unfold(
        (stream, BytesMut::new(), false),
        |(mut stream, mut buffer, mut done)| async move {
            loop {
                if done {
                    if buffer.is_empty() {
                        return None;
                    }
                    let data = buffer.split().freeze().to_vec();
                    return Some((
                        Ok(pb::ArtifactChunk {
                            artifact: None,
                            data,
                        }),
                        (stream, buffer, done),
                    ));
                }
                if buffer.len() >= CHUNK_BYTES {
                    let data = buffer.split_to(CHUNK_BYTES).freeze().to_vec();
                    return Some((
                        Ok(pb::ArtifactChunk {
                            artifact: None,
                            data,
                        }),
                        (stream, buffer, done),
                    ));
                }
                match stream.next().await {
                    Some(Ok(piece)) => buffer.extend_from_slice(&piece),
                    Some(Err(error)) => {
                        tracing::warn!(%error, "reading an artifact from the storage");
                        return Some((
                            Err(storage_status(&error)),
                            (stream, BytesMut::new(), true),
                        ));
                    }
                    None => done = true,
                }
            }
        },
    )
}
