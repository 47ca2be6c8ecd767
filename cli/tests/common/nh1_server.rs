//! The dev server of the CLI tests: in-process, on ephemeral ports,
//! accepting NH1 signatures made with one product key (any identifier).

use nhc_devserver::{Config, DevServer, SharedSecretEntry};

pub async fn with_product_key(key: &str, secret: &str) -> DevServer {
    let server = DevServer::start(Config::default()).await.unwrap();
    server
        .add_shared_secret(SharedSecretEntry::new(key, secret, None))
        .unwrap();
    server
}
