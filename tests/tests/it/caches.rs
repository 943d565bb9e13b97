//! Caches, on both storage backends (a local directory, and moto's S3 server): the first
//! build misses and saves; the second build of an unchanged lock file restores the cache
//! and skips the download (a counter file in the cache proves it); a changed lock file
//! misses and falls back to the restore key; a corrupt object is a miss with a line and
//! the build passes; a fork's pull request neither reads nor writes the base repo's caches,
//! and its own are never read by a branch build; `ocelot cache list|clear` and retention.

use crate::queued_build_id;
use ocelot_core::BuildState;
use ocelot_core::ids::BuildId;
use ocelot_core::storage::{Storage, StorageArgs};
use ocelot_core::store::NewCache;
use ocelot_hookhandler::providers::{self, Provider};
use ocelot_tests::cluster::{Cluster, ClusterSpec, HookSpec};
use ocelot_tests::http::post;
use ocelot_tests::s3::S3Server;
use ocelot_tests::wait_until;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// A "download" happens only when the cache did not bring `vendor/dep.txt`; `vendor/n`
/// counts the downloads the cached directory has seen.
const CACHE_YML: &str = r#"image: ocelot/busybox
cache:
  key: deps-{{ checksum "deps.lock" }}
  paths: [vendor]
  restore_keys: [deps-]
stages:
  - name: deps
    script:
      - mkdir -p vendor
      - if [ ! -f vendor/dep.txt ]; then echo "downloading dependencies"; cat deps.lock > vendor/dep.txt; echo $(( $(cat vendor/n 2>/dev/null || echo 0) + 1 )) > vendor/n; fi
      - echo "vendor=[$(cat vendor/dep.txt)] downloads=[$(cat vendor/n)]"
"#;

/// The fork's version: it tries to poison what it restores and saves.
const FORK_YML: &str = r#"image: ocelot/busybox
cache:
  key: deps-{{ checksum "deps.lock" }}
  paths: [vendor]
  restore_keys: [deps-]
stages:
  - name: deps
    script:
      - mkdir -p vendor
      - echo "fork sees=[$(cat vendor/dep.txt 2>/dev/null)]"
      - echo poison > vendor/dep.txt
      - echo 0 > vendor/n
"#;

async fn log_of(cluster: &Cluster, id: BuildId) -> String {
    let build = cluster.store.get_build(id).await.unwrap();
    let lines = cluster.store.lines(build.id, build.attempt).await.unwrap();
    lines.iter().map(|l| format!("{}\n", l.text)).collect()
}

/// Builds `main` and returns the build's log, checking it passed.
async fn build_main(cluster: &Cluster) -> String {
    let built = cluster
        .ocelot(&["build", "-r", "app", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    log_of(cluster, queued_build_id(&built)).await
}

fn key_of(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("cache `"))
        .and_then(|l| l.split('`').next())
        .unwrap_or_else(|| panic!("no cache line:\n{log}"))
        .to_string()
}

async fn caches_round_trip(storage: Option<StorageArgs>) {
    let cluster = Cluster::start_spec(ClusterSpec {
        hookhandler: Some(HookSpec::default()),
        storage,
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    let repo = cluster
        .git
        .create_repo(
            "team/app",
            &[("ocelot.yml", CACHE_YML), ("deps.lock", "lock-v1")],
        )
        .unwrap();
    let secret = cluster.add_repo("app", &repo.url).await.unwrap();

    // 1. a miss: the dependencies are downloaded, then saved
    let first = build_main(&cluster).await;
    let key_v1 = key_of(&first);
    assert!(key_v1.starts_with("deps-") && key_v1.len() > 20, "{first}");
    assert!(
        first.contains(&format!(
            "cache `{key_v1}`: miss (no saved cache has the key or starts with `deps-`)"
        )),
        "{first}"
    );
    assert!(first.contains("downloading dependencies"), "{first}");
    assert!(first.contains("vendor=[lock-v1] downloads=[1]"), "{first}");
    assert!(
        first.contains(&format!("cache `{key_v1}`: saved (2 files,")),
        "{first}"
    );

    // 2. the unchanged lock file: a hit, no download, nothing saved again
    let second = build_main(&cluster).await;
    assert!(
        second.contains(&format!("cache `{key_v1}`: hit:")),
        "{second}"
    );
    assert!(!second.contains("downloading dependencies"), "{second}");
    assert!(
        second.contains("vendor=[lock-v1] downloads=[1]"),
        "{second}"
    );
    assert!(!second.contains("saved ("), "{second}");

    // 3. a changed lock file: a miss that falls back to the restore key, then saved
    repo.commit(&[("deps.lock", "lock-v2")], "bump deps")
        .unwrap();
    repo.push().unwrap();
    let third = build_main(&cluster).await;
    let key_v2 = key_of(&third);
    assert_ne!(key_v2, key_v1);
    assert!(
        third.contains(&format!(
            "cache `{key_v2}`: miss; restored `{key_v1}` (restore key `deps-`, branch main)"
        )),
        "{third}"
    );
    assert!(!third.contains("downloading dependencies"), "{third}");
    assert!(third.contains("vendor=[lock-v1] downloads=[1]"), "{third}");
    assert!(
        third.contains(&format!("cache `{key_v2}`: saved (")),
        "{third}"
    );

    let listed = cluster
        .ocelot(&["cache", "list", "-r", "app", "--json"])
        .await
        .unwrap();
    assert_eq!(listed.code, 0, "{}", listed.both());
    let list: Value = serde_json::from_str(&listed.stdout).unwrap();
    let keys: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["branch"].as_str().unwrap()))
        .collect();
    let mut expected = vec![(key_v1.as_str(), "main"), (key_v2.as_str(), "main")];
    expected.sort();
    assert_eq!(keys, expected, "{}", listed.stdout);
    let table = cluster
        .ocelot(&["cache", "list", "-r", "app"])
        .await
        .unwrap();
    assert!(table.stdout.contains(&key_v2), "{}", table.both());

    // 4. a corrupt object is a miss with a line; the build passes and saves a good one
    let repo_id = cluster.store.find_repo("app").await.unwrap().id;
    let entries = cluster.store.caches(repo_id).await.unwrap();
    let v2 = entries.iter().find(|e| e.key == key_v2).unwrap();
    let objects = Storage::open(&cluster.storage).unwrap();
    let mut writer = objects.writer(&v2.object_key);
    writer.write(b"not a tar at all").await.unwrap();
    writer.finish().await.unwrap();
    let fourth = build_main(&cluster).await;
    assert!(
        fourth.contains(&format!(
            "cache `{key_v2}`: miss: the saved cache `{key_v2}` is corrupt"
        )),
        "{fourth}"
    );
    assert!(fourth.contains("downloading dependencies"), "{fourth}");
    assert!(
        fourth.contains("vendor=[lock-v2] downloads=[1]"),
        "{fourth}"
    );
    assert!(
        fourth.contains(&format!("cache `{key_v2}`: saved (")),
        "{fourth}"
    );

    // 5. a fork's pull request with the same lock file: it does not read main's cache, and
    // what it saves is its own
    repo.git(&["checkout", "-q", "-b", "fork-main"]).unwrap();
    let fork_commit = repo
        .commit(&[("ocelot.yml", FORK_YML)], "fork's main")
        .unwrap();
    repo.git(&["push", "-q", "origin", "HEAD:refs/pull/7/head"])
        .unwrap();
    repo.git(&["checkout", "-q", "main"]).unwrap();
    let body = crate::github_fork_pull_request(7, &fork_commit).to_string();
    let (header, signature) = providers::sign(Provider::GitHub, body.as_bytes(), &secret);
    let url = format!("{}/hooks/github", cluster.hooks_url.as_ref().unwrap());
    let headers = [
        ("X-GitHub-Event", "pull_request"),
        ("X-GitHub-Delivery", "pr-7"),
        (header, signature.as_str()),
    ];
    let response = post(&url, &headers, body.as_bytes()).await.unwrap();
    assert_eq!(response.status, 202, "{}", response.body);
    let pr_build = wait_until("the fork's build", Duration::from_secs(90), || async {
        cluster
            .builds()
            .await
            .ok()?
            .into_iter()
            .find(|b| b.pull_request.is_some() && b.state.is_final())
    })
    .await
    .unwrap();
    assert_eq!(pr_build.state, BuildState::Passed, "{pr_build:?}");
    let fork_log = log_of(&cluster, pr_build.id).await;
    assert!(
        fork_log.contains(&format!("cache `{key_v2}`: miss (")),
        "{fork_log}"
    );
    assert!(fork_log.contains("fork sees=[]"), "{fork_log}");
    assert!(
        fork_log.contains(&format!("cache `{key_v2}`: saved (2 files,"))
            && fork_log.contains("for branch pr-7"),
        "{fork_log}"
    );

    // main still gets its own cache, not the fork's poison
    let fifth = build_main(&cluster).await;
    assert!(
        fifth.contains(&format!("cache `{key_v2}`: hit:")),
        "{fifth}"
    );
    assert!(fifth.contains("vendor=[lock-v2] downloads=[1]"), "{fifth}");
    // with main's caches gone, the fork's entry of the very same key is still never read
    let cleared = cluster
        .ocelot(&["cache", "clear", "-r", "app", "--branch", "main", "--json"])
        .await
        .unwrap();
    assert_eq!(cleared.code, 0, "{}", cleared.both());
    let cleared: Value = serde_json::from_str(&cleared.stdout).unwrap();
    assert_eq!(cleared["cleared"], 2);
    let sixth = build_main(&cluster).await;
    assert!(
        sixth.contains(&format!("cache `{key_v2}`: miss (")),
        "{sixth}"
    );
    assert!(sixth.contains("vendor=[lock-v2] downloads=[1]"), "{sixth}");
    assert!(!sixth.contains("poison"), "{sixth}");
    let entries = cluster.store.caches(repo_id).await.unwrap();
    let kinds: Vec<(&str, bool)> = entries
        .iter()
        .map(|e| (e.scope.as_str(), e.from_fork))
        .collect();
    assert_eq!(kinds, [("main", false), ("pr-7", true)], "{entries:?}");

    // two saves of one key: the first recorded wins, the second is told so
    let kept = &entries[0];
    let second_save = cluster
        .store
        .record_cache(&NewCache {
            repo_id,
            scope: "main",
            from_fork: false,
            key: &kept.key,
            size: 1,
            sha256: "0",
            object_key: "caches/loser.tar",
            build_id: kept.build_id.unwrap(),
            expires_at: SystemTime::now(),
        })
        .await
        .unwrap();
    assert!(!second_save);

    // clearing everything, then a retention pass, empties the storage
    let cleared = cluster
        .ocelot(&["cache", "clear", "-r", "app"])
        .await
        .unwrap();
    assert_eq!(cleared.code, 0, "{}", cleared.both());
    assert!(
        cleared.stdout.contains("cleared 2 cache(s) of app"),
        "{}",
        cleared.both()
    );
    ocelot_admin::retention::artifact_pass(&cluster.store, &objects)
        .await
        .unwrap();
    let left = objects.list("caches/").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let listed = cluster
        .ocelot(&["cache", "list", "-r", "app", "--json"])
        .await
        .unwrap();
    assert_eq!(listed.stdout.trim(), "[]", "{}", listed.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_on_a_local_directory() {
    caches_round_trip(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_on_an_s3_server() {
    let s3 = S3Server::start().await.unwrap();
    caches_round_trip(Some(s3.storage_args("it"))).await;
}

/// Unused caches expire: the retention pass deletes their rows and objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_caches_expire() {
    let cluster = Cluster::start().await.unwrap();
    crate::repo_with(&cluster, "app", CACHE_YML, &[("deps.lock", "lock")]).await;
    let saved = build_main(&cluster).await;
    assert!(saved.contains("saved ("), "{saved}");
    let later = SystemTime::now() + Duration::from_secs(8 * 24 * 3600);
    assert_eq!(cluster.store.expire_caches(later).await.unwrap(), 1);
    let objects = Storage::open(&cluster.storage).unwrap();
    let pruned = ocelot_admin::retention::artifact_pass(&cluster.store, &objects)
        .await
        .unwrap();
    assert_eq!(pruned.objects, 1, "{pruned:?}");
    assert!(objects.list("caches/").await.unwrap().is_empty());
}
