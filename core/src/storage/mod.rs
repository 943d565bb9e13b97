//! Object storage for build artifacts (and caches): one [`Storage`] over the `object_store`
//! crate, a directory on this machine (the default, for one machine) or an S3-compatible
//! bucket (for several), chosen by [`StorageArgs`]. Objects are written and read as streams,
//! never whole in memory; every write counts its bytes and hashes them (SHA-256) on the way.

mod config;
mod error;

pub use config::{
    Location, OCELOT_STORAGE, OCELOT_STORAGE_ACCESS_KEY_ID, OCELOT_STORAGE_CREDENTIAL,
    OCELOT_STORAGE_ENDPOINT, OCELOT_STORAGE_REGION, OCELOT_STORAGE_SECRET_ACCESS_KEY, StorageArgs,
};
pub use error::StorageError;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::AsyncWriteExt;

/// Bytes buffered before a part of a multipart upload is sent (S3 needs 5 MiB at least).
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Bytes read at a time from an object in a local directory (object_store's own stream
/// reads 8 KiB at a time, a blocking task each).
const FILE_READ_BYTES: usize = 256 * 1024;

/// A handle to the object store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    location: String,
}

/// What a finished write stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

/// An object found by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: SystemTime,
}

/// An object being read: its size, then its bytes.
pub struct ObjectReader {
    pub size: u64,
    pub stream: BoxStream<'static, Result<Bytes, StorageError>>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens the storage `args` name (a directory is created when missing).
    pub fn open(args: &StorageArgs) -> Result<Storage, StorageError> {
        let location = args.location()?;
        let described = location.to_string();
        let store: Arc<dyn ObjectStore> = match &location {
            Location::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::Config(format!("creating {}: {e}", dir.display()))
                })?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| StorageError::backend(&described, &e))?
                    .with_automatic_cleanup(true);
                Arc::new(local)
            }
            Location::S3 { bucket, prefix } => {
                // reqwest's TLS runs on the ring provider (the one crypto provider in the graph)
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(&args.region);
                if let Some(endpoint) = &args.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let Some(key) = &args.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &args.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                let s3 = builder
                    .build()
                    .map_err(|e| StorageError::Config(crate::error_chain::error_chain(&e)))?;
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(
                        s3,
                        ObjectPath::from(prefix.as_str()),
                    ))
                }
            }
        };
        Ok(Storage {
            store,
            location: described,
        })
    }

    /// The storage as `--storage` writes it, for logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn error(&self, error: &object_store::Error) -> StorageError {
        StorageError::backend(&self.location, error)
    }

    /// Starts writing the object `key` (replacing any); nothing is visible before
    /// [`ObjectWriter::finish`].
    pub fn writer(&self, key: &str) -> ObjectWriter {
        ObjectWriter {
            inner: Some(BufWriter::with_capacity(
                self.store.clone(),
                ObjectPath::from(key),
                PART_BYTES,
            )),
            hasher: Sha256::new(),
            size: 0,
            location: self.location.clone(),
        }
    }

    /// Writes the object `key` from `stream`.
    pub async fn put_stream<S, E>(&self, key: &str, stream: S) -> Result<Stored, StorageError>
    where
        S: futures::Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let mut writer = self.writer(key);
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    writer.abort().await;
                    return Err(StorageError::Backend {
                        location: self.location.clone(),
                        message: format!("reading what to store: {error}"),
                    });
                }
            };
            if let Err(error) = writer.write(&chunk).await {
                writer.abort().await;
                return Err(error);
            }
        }
        writer.finish().await
    }

    /// Reads the object `key` as a stream.
    pub async fn get(&self, key: &str) -> Result<ObjectReader, StorageError> {
        let got = self
            .store
            .get(&ObjectPath::from(key))
            .await
            .map_err(|e| self.error(&e))?;
        let size = got.meta.size;
        let location = self.location.clone();
        let stream = match got.payload {
            object_store::GetResultPayload::File(file, path) => {
                let file = tokio::fs::File::from_std(file);
                tokio_util::io::ReaderStream::with_capacity(file, FILE_READ_BYTES)
                    .map_err(move |e| StorageError::Backend {
                        location: location.clone(),
                        message: format!("reading {}: {e}", path.display()),
                    })
                    .boxed()
            }
            object_store::GetResultPayload::Stream(stream) => stream
                .map_err(move |e| StorageError::backend(&location, &e))
                .boxed(),
        };
        Ok(ObjectReader { size, stream })
    }

    /// The size of the object `key`, `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(self.error(&error)),
        }
    }

    /// The objects whose keys start with the folder `prefix` (`a/b` lists `a/b/...`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let prefix = ObjectPath::from(prefix);
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.error(&e))?;
        Ok(metas
            .into_iter()
            .map(|meta| ObjectInfo {
                key: meta.location.to_string(),
                size: meta.size,
                last_modified: meta.last_modified.into(),
            })
            .collect())
    }

    /// Deletes the object `key`; one that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.error(&error)),
        }
    }

    /// Deletes every object under the folder `prefix`; returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let mut deleted = 0;
        for object in self.list(prefix).await? {
            self.delete(&object.key).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// An object being written: its bytes go out in parts as they come, counted and hashed.
/// Dropped before [`ObjectWriter::finish`] (a cancelled build's upload), it is aborted in
/// the background: no multipart upload is left behind in an S3 bucket.
pub struct ObjectWriter {
    /// `None` once finished or aborted.
    inner: Option<BufWriter>,
    hasher: Sha256,
    size: u64,
    location: String,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ObjectWriter {
    fn io_error(&self, error: &std::io::Error) -> StorageError {
        StorageError::Backend {
            location: self.location.clone(),
            message: crate::error_chain::error_chain(error),
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn closed(&self) -> StorageError {
        StorageError::Backend {
            location: self.location.clone(),
            message: "the upload was already finished or aborted".to_string(),
        }
    }

    /// Appends `chunk`.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        let written = match self.inner.as_mut() {
            Some(inner) => inner.write_all(chunk).await,
            None => return Err(self.closed()),
        };
        written.map_err(|error| self.io_error(&error))
    }

    /// Completes the object: from now on it is visible, whole.
    pub async fn finish(mut self) -> Result<Stored, StorageError> {
        let Some(mut inner) = self.inner.take() else {
            return Err(self.closed());
        };
        if let Err(error) = inner.shutdown().await {
            let error = self.io_error(&error);
            abort_upload(inner, &self.location).await;
            return Err(error);
        }
        let hasher = std::mem::take(&mut self.hasher);
        Ok(Stored {
            size: self.size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Gives the object up: nothing of it stays (best effort, logged).
    pub async fn abort(mut self) {
        if let Some(inner) = self.inner.take() {
            abort_upload(inner, &self.location).await;
        }
    }
}

async fn abort_upload(mut inner: BufWriter, location: &str) {
    if let Err(error) = inner.abort().await {
        tracing::warn!(storage = %location, %error, "aborting an unfinished upload");
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let location = self.location.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { abort_upload(inner, &location).await });
            }
            Err(_) => {
                tracing::warn!(storage = %location, "an unfinished upload dropped outside a runtime: not aborted");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_stores_streams_lists_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&StorageArgs::dir(dir.path())).unwrap();
        let chunks = vec![
            Ok::<_, std::io::Error>(Bytes::from_static(b"hello ")),
            Ok(Bytes::from(vec![b'x'; 3 * 1024 * 1024])),
        ];
        let stored = storage
            .put_stream("a/1/file", futures::stream::iter(chunks))
            .await
            .unwrap();
        assert_eq!(stored.size, 6 + 3 * 1024 * 1024);
        assert_eq!(stored.sha256.len(), 64);
        storage
            .put_stream(
                "a/2/other",
                futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]),
            )
            .await
            .unwrap();
        let mut listed: Vec<String> = storage
            .list("a")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        listed.sort();
        assert_eq!(listed, ["a/1/file", "a/2/other"]);
        let reader = storage.get("a/1/file").await.unwrap();
        assert_eq!(reader.size, stored.size);
        let bytes: Vec<Bytes> = reader.stream.try_collect().await.unwrap();
        let mut hasher = Sha256::new();
        for chunk in &bytes {
            hasher.update(chunk);
        }
        assert_eq!(hex::encode(hasher.finalize()), stored.sha256);
        assert_eq!(storage.delete_prefix("a/1").await.unwrap(), 1);
        assert_eq!(storage.size("a/1/file").await.unwrap(), None);
        assert!(matches!(
            storage.get("a/1/file").await,
            Err(StorageError::NotFound(_))
        ));
        storage.delete("a/1/file").await.unwrap();
        assert_eq!(storage.size("a/2/other").await.unwrap(), Some(1));
    }
}
