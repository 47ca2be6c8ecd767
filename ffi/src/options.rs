//! `nhc_socket_options`: a plain struct the caller fills, versioned by its
//! size so that fields can be appended without breaking compiled programs.

use std::ffi::c_char;
use std::mem::size_of;
use std::path::PathBuf;
use std::time::Duration;

use nerves_hub_channel::codec::Serializer;
use nerves_hub_channel::{PemSource, SocketConfig, TlsOptions};

use crate::args::{bytes_arg, opt_str_arg, str_arg};
use crate::boundary::boundary_pure;
use crate::cbool::CBool;
use crate::closure::nhc_state_closure;
use crate::error::{invalid, FfiResult};
use crate::key_options::nhc_key_options;
use crate::nhc_result;

/// How a socket's callbacks are run: the values of `nhc_socket_options.delivery`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_delivery {
    /// On the library's dispatcher thread (one thread shared by all sockets).
    NHC_DELIVERY_THREADED = 0,
    /// Only inside `nhc_socket_dispatch`, on the thread that calls it; for
    /// poll/select/epoll main loops (see `nhc_socket_fd`).
    NHC_DELIVERY_POLLED = 1,
    /// On the socket's I/O thread, as each message is read: no hand-off to
    /// another thread, the cheapest per message. Callbacks must not block
    /// (no socket on that I/O thread reads, writes or heartbeats while one
    /// runs); they may join, leave, push and free, as from any callback.
    /// Sockets only: `nhc_device_new` refuses it (docs/c.md, "Callbacks and threads").
    NHC_DELIVERY_INLINE = 2,
}

/// How messages go on the wire: the values of `nhc_socket_options.serializer`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_serializer {
    /// Phoenix V2 JSON in text frames (`vsn=2.0.0`).
    NHC_SERIALIZER_JSON = 0,
    /// MessagePack in binary frames (`vsn=3.0.0`): fewer bytes on metered
    /// links; the server must support it (nerves_hub_web after July 2026).
    /// Payloads still reach callbacks as JSON text (docs/messagepack.md).
    NHC_SERIALIZER_MSGPACK = 1,
}

/// One HTTP header or query parameter. Both strings are NUL-terminated UTF-8.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct nhc_key_value {
    /// The name.
    pub key: *const c_char,
    /// The value.
    pub value: *const c_char,
}

/// Everything `nhc_socket_new` needs. Fill it with
/// `nhc_socket_options_default(&opts)`, then set the fields you need.
/// Pointers are borrowed: they must stay valid until `nhc_socket_new`
/// returns, which copies everything; the struct may then be reused or freed.
/// New fields are only ever appended, and `struct_size` tells the library
/// which ones a program was compiled with.
///
/// TLS material (for `wss://` URLs) comes from a file (`*_file`, a PEM
/// path) or from memory (`*_pem` + `*_len`), not both. Without `ca_*` the
/// system's trust store is used.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_socket_options {
    /// `sizeof(nhc_socket_options)` as the program was compiled; set by
    /// `nhc_socket_options_default`. Do not change it.
    pub struct_size: usize,
    /// Required: `ws://` or `wss://` URL of the socket endpoint, for example
    /// `wss://device.nerves-hub.org/device-socket/websocket`. The
    /// `serializer`'s `vsn` is added; a `vsn` with another value (in the URL
    /// or `params`) is refused.
    pub url: *const c_char,
    /// Path of the PEM CA bundle that verifies the server.
    pub ca_file: *const c_char,
    /// The same in memory.
    pub ca_pem: *const u8,
    /// Length of `ca_pem`.
    pub ca_pem_len: usize,
    /// Path of the PEM client certificate (chain) for mutual TLS.
    pub cert_file: *const c_char,
    /// The same in memory.
    pub cert_pem: *const u8,
    /// Length of `cert_pem`.
    pub cert_pem_len: usize,
    /// Path of the PEM private key of the client certificate.
    pub key_file: *const c_char,
    /// The same in memory.
    pub key_pem: *const u8,
    /// Length of `key_pem`.
    pub key_pem_len: usize,
    /// Name to verify the server certificate against, if not the URL's host.
    pub server_name: *const c_char,
    /// Extra HTTP headers of the websocket upgrade: `headers_len` entries.
    pub headers: *const nhc_key_value,
    /// Number of entries in `headers`.
    pub headers_len: usize,
    /// Extra query parameters of the URL: `params_len` entries.
    pub params: *const nhc_key_value,
    /// Number of entries in `params`.
    pub params_len: usize,
    /// Deadline of TCP connect + TLS + upgrade (default 15000).
    pub connect_timeout_ms: u32,
    /// Interval between heartbeats (default 30000).
    pub heartbeat_interval_ms: u32,
    /// No heartbeat reply within this time closes and reconnects (default 30000).
    pub heartbeat_timeout_ms: u32,
    /// Timeout of joins, leaves and pushes given a timeout of 0 (default 10000).
    pub default_timeout_ms: u32,
    /// Delay before rejoining after a channel error or a failed join (default 5000).
    pub rejoin_after_ms: u32,
    /// Rejoin channels that the server closed (`phx_close`) (default false).
    pub rejoin_after_close: CBool,
    /// Reconnect after a lost or failed connection (default true).
    pub reconnect: CBool,
    /// First reconnect delay (default 1000), doubling up to `backoff_max_ms`.
    pub backoff_initial_ms: u32,
    /// Largest reconnect delay (default 60000).
    pub backoff_max_ms: u32,
    /// Each delay is multiplied by 1 + jitter * U(0,1) (default 0.5).
    pub backoff_jitter: f64,
    /// Pushes waiting for the connection or the join, at most (default 1024).
    pub outbound_capacity: usize,
    /// Events waiting for the callbacks before the socket stops reading (default 1024).
    pub event_capacity: usize,
    /// Largest inbound message in bytes (default 8 MiB, at least 1024).
    pub max_message_size: usize,
    /// Websocket read buffer in bytes (default 4096: paid per connection).
    pub read_buffer_size: usize,
    /// An `nhc_delivery` value (default `NHC_DELIVERY_THREADED`).
    pub delivery: i32,
    /// Receives the socket's state changes (default: none). Moved into the
    /// socket by `nhc_socket_new`, even when it fails (its `drop` then runs
    /// before it returns; only a NULL `opts` or one not initialised by
    /// `nhc_socket_options_default` leaves it untouched): never give one
    /// closure to two sockets.
    pub on_state: nhc_state_closure,
    // ---- Version 2: appended fields (a V1 program gets their defaults). ----
    /// How long a connection must stay joined before its end restarts the
    /// reconnect backoff from `backoff_initial_ms` (default 120000). A
    /// connection the server closes sooner counts as a failure, so two
    /// devices sharing one identity escalate to the slow end instead of
    /// taking turns every second. Keep it above `backoff_max_ms` plus its
    /// jitter; 0 restarts the backoff after every join.
    pub stable_after_ms: u32,
    // ---- Version 3: appended fields (an older program gets their defaults). ----
    /// A client key that never leaves its chip (PKCS#11 token or signing
    /// callback) instead of `key_file` / `key_pem`. Default: none.
    pub key: nhc_key_options,
    // ---- Version 4: appended fields (an older program gets their defaults). ----
    /// An `nhc_serializer` value (default `NHC_SERIALIZER_JSON`).
    pub serializer: i32,
    /// HTTP proxy of the websocket and of the device's firmware downloads:
    /// `http://[user:password@]host[:port]` (credentials percent-encoded,
    /// sent as `Proxy-Authorization: Basic`, never logged). NULL or "":
    /// none set here (see `proxy_from_env`). Default NULL.
    pub proxy_url: *const c_char,
    /// Hosts reached without `proxy_url`, in the `no_proxy` format
    /// (`host,.domain,10.0.0.1,*`). Default NULL.
    pub no_proxy: *const c_char,
    /// Without `proxy_url`: take the proxy from `https_proxy` /
    /// `HTTPS_PROXY` (wss, https) or `http_proxy` (ws, http), except for
    /// hosts in `no_proxy` / `NO_PROXY` (default true; false: connect
    /// directly).
    pub proxy_from_env: CBool,
}

/// The size of the first published version of the struct (up to `on_state`).
/// cbindgen:ignore
const V1_SIZE: usize = std::mem::offset_of!(nhc_socket_options, stable_after_ms);

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn defaults() -> nhc_socket_options {
    let c = SocketConfig::new(String::new());
    nhc_socket_options {
        struct_size: size_of::<nhc_socket_options>(),
        url: std::ptr::null(),
        ca_file: std::ptr::null(),
        ca_pem: std::ptr::null(),
        ca_pem_len: 0,
        cert_file: std::ptr::null(),
        cert_pem: std::ptr::null(),
        cert_pem_len: 0,
        key_file: std::ptr::null(),
        key_pem: std::ptr::null(),
        key_pem_len: 0,
        server_name: std::ptr::null(),
        headers: std::ptr::null(),
        headers_len: 0,
        params: std::ptr::null(),
        params_len: 0,
        connect_timeout_ms: ms(c.connect_timeout),
        heartbeat_interval_ms: ms(c.heartbeat_interval),
        heartbeat_timeout_ms: ms(c.heartbeat_timeout),
        default_timeout_ms: ms(c.default_timeout),
        rejoin_after_ms: ms(c.rejoin_after),
        rejoin_after_close: c.rejoin_after_close.into(),
        reconnect: c.reconnect.into(),
        backoff_initial_ms: ms(c.backoff.initial),
        backoff_max_ms: ms(c.backoff.max),
        backoff_jitter: c.backoff.jitter,
        outbound_capacity: c.outbound_capacity,
        event_capacity: c.event_capacity,
        max_message_size: c.max_message_size,
        read_buffer_size: c.read_buffer_size,
        delivery: nhc_delivery::NHC_DELIVERY_THREADED as i32,
        on_state: nhc_state_closure::none(),
        stable_after_ms: ms(c.stable_after),
        key: nhc_key_options::none(),
        serializer: nhc_serializer::NHC_SERIALIZER_JSON as i32,
        proxy_url: std::ptr::null(),
        no_proxy: std::ptr::null(),
        proxy_from_env: c.proxy.from_env.into(),
    }
}

/// Fills `*opts` (of `struct_size` bytes) with the defaults. Programs call
/// it through `nhc_socket_options_default(&opts)`, which passes `sizeof`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` if `opts` is NULL or `struct_size`
/// is smaller than any version of the struct.
///
/// # Safety
/// `opts` is NULL or points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn nhc_socket_options_init(
    opts: *mut nhc_socket_options,
    struct_size: usize,
) -> nhc_result {
    boundary_pure(|| {
        if opts.is_null() {
            return Err(invalid("opts is NULL"));
        }
        if struct_size < V1_SIZE {
            return Err(invalid(format!(
                "struct_size {struct_size} is smaller than nhc_socket_options ({V1_SIZE})"
            )));
        }
        let mut d = defaults();
        let ours = size_of::<nhc_socket_options>();
        d.struct_size = struct_size.min(ours);
        let dst = opts.cast::<u8>();
        // SAFETY: `opts` is not NULL and has `struct_size` writable bytes (the caller's contract);
        // `d` is a live struct of `ours` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&d as *const nhc_socket_options).cast::<u8>(),
                dst,
                ours.min(struct_size),
            )
        };
        if struct_size > ours {
            // Fields of a newer header: zero is their default by design.
            // SAFETY: `dst + ours .. dst + struct_size` lies within the caller's `struct_size`
            // writable bytes.
            unsafe { std::ptr::write_bytes(dst.add(ours), 0, struct_size - ours) };
        }
        Ok(())
    })
}

/// A copy of the caller's options as this library version knows them.
///
/// # Safety
/// `opts` points to an options struct whose `struct_size` bytes are readable.
pub(crate) unsafe fn read(opts: *const nhc_socket_options) -> FfiResult<nhc_socket_options> {
    // SAFETY: `opts` points to an options struct starting with its `usize` size (the caller's
    // contract).
    let size = unsafe { std::ptr::read_unaligned(opts.cast::<usize>()) };
    if size < V1_SIZE {
        return Err(invalid(
            "opts was not initialised with nhc_socket_options_default (struct_size is wrong)",
        ));
    }
    let mut d = defaults();
    let n = size.min(size_of::<nhc_socket_options>());
    // SAFETY: `opts` has `size` readable bytes and `d` has `size_of` bytes; `n` is the smaller.
    // Every field is an integer, pointer, `CBool` or `Option<fn>`, valid for any bytes the caller
    // left.
    unsafe {
        std::ptr::copy_nonoverlapping(
            opts.cast::<u8>(),
            (&mut d as *mut nhc_socket_options).cast::<u8>(),
            n,
        )
    };
    Ok(d)
}

pub(crate) unsafe fn pem(
    file: *const c_char,
    mem: *const u8,
    len: usize,
    name: &str,
) -> FfiResult<Option<PemSource>> {
    // SAFETY: `file` is NULL or a NUL-terminated string (the caller's contract).
    let file = unsafe { opt_str_arg(file, &format!("{name}_file")) }?;
    let mem = (!mem.is_null() || len > 0)
        // SAFETY: `mem` is NULL or points to `len` readable bytes (the caller's contract).
        .then(|| unsafe { bytes_arg(mem, len, &format!("{name}_pem")) })
        .transpose()?;
    match (file, mem) {
        (Some(_), Some(_)) => Err(invalid(format!("set {name}_file or {name}_pem, not both"))),
        (Some(f), None) => Ok(Some(PemSource::File(PathBuf::from(f)))),
        (None, Some(m)) => Ok(Some(PemSource::Memory(m.to_vec()))),
        (None, None) => Ok(None),
    }
}

pub(crate) unsafe fn pairs(
    ptr: *const nhc_key_value,
    len: usize,
    name: &str,
) -> FfiResult<Vec<(String, String)>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL but {name}_len is {len}")));
    }
    // SAFETY: `ptr` is not NULL (checked above) and points to `len` entries (the caller's
    // contract).
    unsafe { std::slice::from_raw_parts(ptr, len) }
        .iter()
        .enumerate()
        .map(|(i, kv)| {
            // SAFETY: `kv.key` is NULL or a NUL-terminated string (the caller's contract).
            let key = unsafe { str_arg(kv.key, &format!("{name}[{i}].key")) }?;
            // SAFETY: `kv.value` is NULL or a NUL-terminated string (the caller's contract).
            let value = unsafe { str_arg(kv.value, &format!("{name}[{i}].value")) }?;
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

fn millis(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

/// Builds the core configuration; the socket is validated by the core.
///
/// # Safety
/// Every pointer in `o` is NULL or valid as documented on the struct.
// Field by field so that TLS options the core may add keep their defaults.
#[allow(clippy::field_reassign_with_default)]
pub(crate) unsafe fn to_config(o: &nhc_socket_options) -> FfiResult<(SocketConfig, nhc_delivery)> {
    let mut tls = TlsOptions::default();
    // First, so that its sign closure is owned (and dropped) whatever fails.
    // SAFETY: `o.key`'s pointers are NULL or valid (the caller's contract).
    unsafe { crate::key_options::apply(&o.key, &mut tls) }?;
    // SAFETY: `o.url` is NULL or a NUL-terminated string (the caller's contract).
    let url = unsafe { str_arg(o.url, "url") }?;
    let mut c = SocketConfig::new(url);
    // SAFETY: the PEM pointers are NULL or valid for their lengths (the caller's contract).
    tls.ca = unsafe { pem(o.ca_file, o.ca_pem, o.ca_pem_len, "ca") }?;
    // SAFETY: the PEM pointers are NULL or valid for their lengths (the caller's contract).
    tls.client_cert = unsafe { pem(o.cert_file, o.cert_pem, o.cert_pem_len, "cert") }?;
    // SAFETY: the PEM pointers are NULL or valid for their lengths (the caller's contract).
    tls.client_key = unsafe { pem(o.key_file, o.key_pem, o.key_pem_len, "key") }?;
    // SAFETY: `o.server_name` is NULL or a NUL-terminated string (the caller's contract).
    tls.server_name = unsafe { opt_str_arg(o.server_name, "server_name") }?.map(str::to_owned);
    c.tls = tls;
    // SAFETY: `o.headers` is NULL or points to `o.headers_len` valid entries (the caller's
    // contract).
    c.headers = unsafe { pairs(o.headers, o.headers_len, "headers") }?;
    // SAFETY: `o.params` is NULL or points to `o.params_len` valid entries (the caller's contract).
    c.params = unsafe { pairs(o.params, o.params_len, "params") }?;
    c.connect_timeout = millis(o.connect_timeout_ms);
    c.heartbeat_interval = millis(o.heartbeat_interval_ms);
    c.heartbeat_timeout = millis(o.heartbeat_timeout_ms);
    c.default_timeout = millis(o.default_timeout_ms);
    c.rejoin_after = millis(o.rejoin_after_ms);
    c.rejoin_after_close = o.rejoin_after_close.get();
    c.reconnect = o.reconnect.get();
    c.backoff.initial = millis(o.backoff_initial_ms);
    c.backoff.max = millis(o.backoff_max_ms);
    if !(0.0..=10.0).contains(&o.backoff_jitter) {
        return Err(invalid("backoff_jitter must be between 0 and 10"));
    }
    c.backoff.jitter = o.backoff_jitter;
    c.stable_after = millis(o.stable_after_ms);
    c.outbound_capacity = o.outbound_capacity;
    c.event_capacity = o.event_capacity;
    c.max_message_size = o.max_message_size;
    if o.read_buffer_size < 256 {
        return Err(invalid("read_buffer_size must be at least 256"));
    }
    c.read_buffer_size = o.read_buffer_size;
    // SAFETY: `o.proxy_url` is NULL or a NUL-terminated string (the caller's contract).
    c.proxy.url = unsafe { opt_str_arg(o.proxy_url, "proxy_url") }?.map(str::to_owned);
    // SAFETY: `o.no_proxy` is NULL or a NUL-terminated string (the caller's contract).
    c.proxy.no_proxy = unsafe { opt_str_arg(o.no_proxy, "no_proxy") }?.map(str::to_owned);
    c.proxy.from_env = o.proxy_from_env.get();
    let delivery = match o.delivery {
        0 => nhc_delivery::NHC_DELIVERY_THREADED,
        1 => nhc_delivery::NHC_DELIVERY_POLLED,
        2 => nhc_delivery::NHC_DELIVERY_INLINE,
        other => {
            return Err(invalid(format!(
                "delivery {other} is not an nhc_delivery value"
            )))
        }
    };
    const JSON: i32 = nhc_serializer::NHC_SERIALIZER_JSON as i32;
    const MSGPACK: i32 = nhc_serializer::NHC_SERIALIZER_MSGPACK as i32;
    c.serializer = match o.serializer {
        JSON => Serializer::Json,
        MSGPACK => Serializer::MsgPack,
        other => {
            return Err(invalid(format!(
                "serializer {other} is not an nhc_serializer value"
            )))
        }
    };
    Ok((c, delivery))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller that is not C (ctypes, Go, Zig) may store any byte in a
    /// `bool` field: nonzero is true, and copying the struct is not
    /// undefined behaviour (Miri checks this test).
    #[test]
    fn a_bool_byte_other_than_0_or_1_is_true() {
        let mut o = defaults();
        o.url = c"ws://127.0.0.1:1/socket/websocket".as_ptr();
        // SAFETY: each field is one byte of the live struct `o`.
        unsafe {
            std::ptr::addr_of_mut!(o.rejoin_after_close)
                .cast::<u8>()
                .write(2);
            std::ptr::addr_of_mut!(o.reconnect).cast::<u8>().write(0);
        }
        // SAFETY: `o` is a live struct whose pointers are NULL or a literal.
        let (c, _) = unsafe { read(&o).and_then(|r| to_config(&r)) }.expect("valid");
        assert!(c.rejoin_after_close);
        assert!(!c.reconnect);
    }
}
