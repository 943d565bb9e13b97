//! Postgres over TLS, as the database URL's `sslmode` says: a server that refuses
//! connections without TLS is reached with `verify-full` and the CA that signed its
//! certificate; without TLS, with an unknown CA, or under a name its certificate does not
//! carry (`verify-full`), the connection is refused; `verify-ca` checks the chain only.

use ocelot_core::error_chain::error_chain;
use ocelot_core::settings::DatabaseArgs;
use ocelot_core::store::Store;
use ocelot_tests::pg_server::PostgresServer;
use ocelot_tests::tls::TestCertificates;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_connects_over_verified_tls_and_refuses_what_it_cannot_verify() {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap();
    let plain_url = server.create_database("ocelot").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certificates = TestCertificates::generate(dir.path()).unwrap();
    server.require_tls(&certificates).unwrap();
    server.stop("fast").unwrap();
    server.start_again().unwrap();

    // verify-full with the CA: connected (migrations applied), and it answers
    let args = DatabaseArgs {
        database_url: format!("{plain_url}?sslmode=verify-full"),
        database_ca_file: Some(certificates.ca.clone()),
        ..DatabaseArgs::new("")
    };
    let store = args.connect().await.unwrap();
    store.ping().await.unwrap();
    assert!(store.list_repos().await.unwrap().is_empty());

    // no TLS: the server refuses it
    let Err(error) = Store::connect_with_ca(&plain_url, None).await else {
        panic!("a connection without TLS was accepted");
    };
    let chain = error_chain(&error);
    assert!(chain.contains("no encryption"), "{chain}");
    // verify-full without the CA (the system's roots do not know it): refused
    let verify_full = format!("{plain_url}?sslmode=verify-full");
    let Err(error) = Store::connect_with_ca(&verify_full, None).await else {
        panic!("a certificate of an unknown CA was accepted");
    };
    let chain = error_chain(&error);
    assert!(chain.contains("UnknownIssuer"), "{chain}");
    // a name the certificate does not carry (it names 127.0.0.1): verify-full refuses,
    // verify-ca (the chain only) accepts
    let by_name = plain_url.replace("127.0.0.1", "localhost");
    let Err(error) = Store::connect_with_ca(
        &format!("{by_name}?sslmode=verify-full"),
        Some(&certificates.ca),
    )
    .await
    else {
        panic!("a certificate for another name was accepted under verify-full");
    };
    assert!(
        error_chain(&error).contains("not valid for name"),
        "{error:?}"
    );
    Store::connect_with_ca(
        &format!("{by_name}?sslmode=verify-ca"),
        Some(&certificates.ca),
    )
    .await
    .unwrap()
    .ping()
    .await
    .unwrap();
    // require: encrypted, the certificate not checked (libpq's meaning)
    Store::connect_with_ca(&format!("{plain_url}?sslmode=require"), None)
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
    // the first store still works
    store.ping().await.unwrap();
}
