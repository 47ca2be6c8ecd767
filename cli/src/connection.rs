//! Turns the command-line options into a device configuration for one identity.

use std::sync::Arc;

use nerves_hub_channel::nerves_hub::nh1::{Nh1Auth, SharedSecret};
use nerves_hub_channel::nerves_hub::{DeviceConfig, FirmwareMetadata};
use nerves_hub_channel::{PemSource, SocketConfig};

use crate::args::Options;

/// The configuration of the device with this identity (`None`: the
/// certificate's own identity, or `--identifier`).
pub fn device_config(o: &Options, identity: Option<&str>) -> Result<DeviceConfig, String> {
    let mut socket = SocketConfig::new(&o.url);
    socket.tls.ca = o.ca.clone().map(PemSource::File);
    match (&o.cert_dir, identity) {
        (Some(dir), Some(id)) => {
            socket.tls.client_cert = Some(PemSource::File(dir.join(format!("{id}.pem"))));
            socket.tls.client_key = Some(PemSource::File(dir.join(format!("{id}-key.pem"))));
        }
        _ => {
            socket.tls.client_cert = o.cert.clone().map(PemSource::File);
            socket.tls.client_key = o.key.clone().map(PemSource::File);
        }
    }
    if let Some(pkcs11) = &o.pkcs11 {
        let key = nerves_hub_channel::Pkcs11Key::open(pkcs11).map_err(|e| e.to_string())?;
        socket.tls.client_signer = Some(nerves_hub_channel::ExternalKey::new(key));
    }
    if let Some(stable) = o.stable_after {
        socket.stable_after = stable;
    }
    let mut config = DeviceConfig::new(socket);
    if let Some((key, secret)) = &o.shared_secret {
        let identifier = identity
            .map(str::to_owned)
            .or_else(|| o.identifier.clone())
            .ok_or("--shared-secret needs --identifier")?;
        let secret = SharedSecret::new(key.clone(), secret.clone(), identifier);
        let signer =
            Nh1Auth::with_clock_offset(secret, o.clock_offset).map_err(|e| e.to_string())?;
        config.auth = Some(Arc::new(signer));
    }
    let mut metadata = match (&o.metadata_file, &o.uboot_env) {
        (Some(path), _) => FirmwareMetadata::from_env_file(path).map_err(|e| e.to_string())?,
        (None, Some(env)) => {
            config.firmware_validated = Some(env.validated_fn());
            env.metadata()?
        }
        (None, None) => FirmwareMetadata::new(),
    };
    for (k, v) in &o.meta {
        metadata.set(k.clone(), v.clone());
    }
    config.metadata = metadata;
    if let Some(rejoin) = o.device_rejoin_after_close {
        config.device_rejoin_after_close = rejoin;
    }
    Ok(config)
}
