//! `nhc_update_options`: where an update's image goes and how it is
//! downloaded; and the C sink behind `nhc_update_sink`.

use std::ffi::{c_char, c_int};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::nerves_hub::update::{
    DownloadOptions, ImageSink, SinkSpec, UpdateInfo, UpdateOptions,
};
use nerves_hub_channel::TlsOptions;

use crate::args::{opt_str_arg, str_arg, to_cstring};
use crate::boundary::{boundary_pure, guard_callback};
use crate::closure::Owned;
use crate::device_closure::nhc_update_sink;
use crate::error::{invalid, FfiResult};
use crate::nhc_result;
use crate::options::nhc_key_value;
use crate::versioned;

/// How `nhc_device_apply_update` (or `nhc_device_options.auto_update`)
/// runs an update. Fill it with `nhc_update_options_default(&opts)`, then
/// set exactly one sink: `file_path`, `sink` or `fwup_command`. Pointers
/// are borrowed until the function receiving the options returns; `sink`
/// is moved into it, also on failure. New fields are only appended
/// (`struct_size`).
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_update_options {
    /// `sizeof(nhc_update_options)` as compiled; set by `nhc_update_options_default`.
    pub struct_size: usize,
    /// Sink 1: the image is written to `<file_path>.partial`, synced, and
    /// renamed to `file_path` only once verified.
    pub file_path: *const c_char,
    /// Sink 2: your callbacks (see `nhc_update_sink`).
    pub sink: nhc_update_sink,
    /// Sink 3: a program reading the image on its stdin, typically "fwup"
    /// (found in PATH unless it contains a '/'). A program named `fwup` is
    /// run with `--framing`: progress and the failure reason (`FWUP error :
    /// "..."`) come from fwup itself, and without a known fwup public key
    /// the update is refused (see `allow_unverified_firmware`). Any other
    /// program gets the plain image on stdin.
    pub fwup_command: *const c_char,
    /// Its arguments, e.g. {"--apply", "--no-unmount", "-d", "/dev/mmcblk0",
    /// "--task", "upgrade"}; NUL-terminated UTF-8 strings.
    pub fwup_args: *const *const c_char,
    /// Number of `fwup_args`.
    pub fwup_args_len: usize,
    /// No byte for this long counts as an interruption (default 60000; > 0).
    pub idle_timeout_ms: u32,
    /// Interruptions tolerated before the update fails (default 10).
    pub max_disconnects: u32,
    /// Wait before reconnecting after an interruption (default 15000).
    pub retry_delay_ms: u32,
    /// The whole update must end within this (default 86400000, 24 h; > 0).
    pub max_total_ms: u32,
    /// PEM CA bundle verifying an https firmware server (default: the
    /// system's trust store).
    pub ca_file: *const c_char,
    /// The same in memory.
    pub ca_pem: *const u8,
    /// Length of `ca_pem`.
    pub ca_pem_len: usize,
    /// Extra HTTP request headers.
    pub headers: *const nhc_key_value,
    /// Number of `headers`.
    pub headers_len: usize,
    // ---- Version 2: appended fields (a V1 program gets their defaults). ----
    /// PEM client certificate chain for a firmware server that requires
    /// mutual TLS (a file; or `cert_pem`, not both). Needs a key.
    pub cert_file: *const c_char,
    /// The same in memory.
    pub cert_pem: *const u8,
    /// Length of `cert_pem`.
    pub cert_pem_len: usize,
    /// The client certificate's private key (a file; or `key_pem`).
    pub key_file: *const c_char,
    /// The same in memory (never logged).
    pub key_pem: *const u8,
    /// Length of `key_pem`.
    pub key_pem_len: usize,
    /// TLS server name to send and verify instead of the URL's host (NULL: the host).
    pub server_name: *const c_char,
}

/// The size of the first published version of the struct (up to `headers_len`).
/// cbindgen:ignore
const V1_SIZE: usize = std::mem::offset_of!(nhc_update_options, cert_file);

fn defaults() -> nhc_update_options {
    let d = DownloadOptions::default();
    let ms = |v: Duration| u32::try_from(v.as_millis()).unwrap_or(u32::MAX);
    nhc_update_options {
        struct_size: std::mem::size_of::<nhc_update_options>(),
        file_path: std::ptr::null(),
        sink: nhc_update_sink::none(),
        fwup_command: std::ptr::null(),
        fwup_args: std::ptr::null(),
        fwup_args_len: 0,
        idle_timeout_ms: ms(d.idle_timeout),
        max_disconnects: d.max_disconnects,
        retry_delay_ms: ms(d.retry_delay),
        max_total_ms: ms(d.max_total),
        ca_file: std::ptr::null(),
        ca_pem: std::ptr::null(),
        ca_pem_len: 0,
        headers: std::ptr::null(),
        headers_len: 0,
        cert_file: std::ptr::null(),
        cert_pem: std::ptr::null(),
        cert_pem_len: 0,
        key_file: std::ptr::null(),
        key_pem: std::ptr::null(),
        key_pem_len: 0,
        server_name: std::ptr::null(),
    }
}

/// Fills `*opts` (of `struct_size` bytes) with the defaults. Programs call
/// it through `nhc_update_options_default(&opts)`, which passes `sizeof`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` if `opts` is NULL or `struct_size`
/// is smaller than any version of the struct.
///
/// # Safety
/// `opts` is NULL or points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn nhc_update_options_init(
    opts: *mut nhc_update_options,
    struct_size: usize,
) -> nhc_result {
    // SAFETY: `opts` is NULL or has `struct_size` writable bytes (the caller's contract); `init`
    // checks NULL and the size.
    boundary_pure(|| unsafe {
        versioned::init(opts, struct_size, V1_SIZE, defaults(), "nhc_update_options")
    })
}

/// Reads the caller's options and converts them, taking the sink closure
/// first so that it is dropped exactly once whatever fails.
///
/// # Safety
/// `opts` is NULL or an initialised options struct whose pointers are valid.
pub(crate) unsafe fn take(opts: *const nhc_update_options) -> FfiResult<UpdateOptions> {
    if opts.is_null() {
        return Err(invalid("update options are NULL"));
    }
    // SAFETY: `opts` is not NULL (checked above) and was initialised by
    // `nhc_update_options_default` (the caller's contract).
    let mut o = unsafe { versioned::read(opts, V1_SIZE, defaults(), "nhc_update_options") }?;
    let sink = std::mem::replace(&mut o.sink, nhc_update_sink::none());
    let custom = sink.is_set().then(|| Owned::new(sink));
    // SAFETY: the pointers in `o` are NULL or valid, as the caller of `take` promises.
    unsafe { convert(&o, custom) }
}

// Field by field so that options the core may add keep their defaults.
#[allow(clippy::field_reassign_with_default)]
unsafe fn convert(
    o: &nhc_update_options,
    custom: Option<Owned<nhc_update_sink>>,
) -> FfiResult<UpdateOptions> {
    // SAFETY: `o.file_path` is NULL or a NUL-terminated string (the caller's contract).
    let file = unsafe { opt_str_arg(o.file_path, "file_path") }?;
    // SAFETY: `o.fwup_command` is NULL or a NUL-terminated string (the caller's contract).
    let fwup = unsafe { opt_str_arg(o.fwup_command, "fwup_command") }?;
    let chosen =
        usize::from(file.is_some()) + usize::from(custom.is_some()) + usize::from(fwup.is_some());
    if chosen != 1 {
        return Err(invalid(format!(
            "set exactly one sink in nhc_update_options (file_path, sink or fwup_command); {chosen} are set"
        )));
    }
    let spec = if let Some(path) = file {
        if path.is_empty() {
            return Err(invalid("file_path is empty"));
        }
        SinkSpec::File(PathBuf::from(path))
    } else if let Some(command) = fwup {
        if command.is_empty() {
            return Err(invalid("fwup_command is empty"));
        }
        SinkSpec::Fwup {
            command: command.to_owned(),
            // SAFETY: `o.fwup_args` is NULL or points to `o.fwup_args_len` valid entries (the
            // caller's contract).
            args: unsafe { strings(o.fwup_args, o.fwup_args_len, "fwup_args") }?,
        }
    } else {
        let sink = custom.ok_or_else(|| invalid("no sink"))?;
        let raw = sink.raw();
        if raw.begin.is_none() || raw.write.is_none() || raw.finish.is_none() {
            return Err(invalid(
                "sink.begin, sink.write and sink.finish must not be NULL",
            ));
        }
        SinkSpec::Custom(Arc::new(CSink { closure: sink }))
    };
    if o.idle_timeout_ms == 0 || o.max_total_ms == 0 {
        return Err(invalid(
            "idle_timeout_ms and max_total_ms must be greater than 0",
        ));
    }
    let mut download = DownloadOptions::default();
    download.idle_timeout = millis(o.idle_timeout_ms);
    download.max_disconnects = o.max_disconnects;
    download.retry_delay = millis(o.retry_delay_ms);
    download.max_total = millis(o.max_total_ms);
    let mut tls = TlsOptions::default();
    // SAFETY: the PEM pointers are NULL or valid for their lengths (the caller's contract).
    tls.ca = unsafe { crate::options::pem(o.ca_file, o.ca_pem, o.ca_pem_len, "ca") }?;
    // SAFETY: the PEM pointers are NULL or valid for their lengths (the caller's contract).
    tls.client_cert =
        unsafe { crate::options::pem(o.cert_file, o.cert_pem, o.cert_pem_len, "cert") }?;
    // SAFETY: the PEM pointers are NULL or valid for their lengths (the caller's contract).
    tls.client_key = unsafe { crate::options::pem(o.key_file, o.key_pem, o.key_pem_len, "key") }?;
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        return Err(invalid(
            "a client certificate needs its key (cert_* and key_* go together)",
        ));
    }
    // SAFETY: `o.server_name` is NULL or a NUL-terminated string (the caller's contract).
    tls.server_name = unsafe { opt_str_arg(o.server_name, "server_name") }?.map(str::to_owned);
    download.tls = tls;
    // SAFETY: `o.headers` is NULL or points to `o.headers_len` valid entries (the caller's
    // contract).
    download.headers = unsafe { crate::options::pairs(o.headers, o.headers_len, "headers") }?;
    let mut options = UpdateOptions::new(spec);
    options.download = download;
    Ok(options)
}

fn millis(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

pub(crate) unsafe fn strings(
    ptr: *const *const c_char,
    len: usize,
    name: &str,
) -> FfiResult<Vec<String>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL but {name}_len is {len}")));
    }
    // SAFETY: `ptr` is not NULL (checked above) and points to `len` string pointers (the caller's
    // contract).
    unsafe { std::slice::from_raw_parts(ptr, len) }
        .iter()
        .enumerate()
        // SAFETY: `*s` is NULL or a NUL-terminated string (the caller's contract).
        .map(|(i, s)| unsafe { str_arg(*s, &format!("{name}[{i}]")) }.map(str::to_owned))
        .collect()
}

/// An `ImageSink` whose methods are the caller's C functions.
struct CSink {
    closure: Owned<nhc_update_sink>,
}

impl CSink {
    fn check(&self, what: &str, call: impl FnOnce() -> c_int) -> Result<(), String> {
        // A panic (none expected) counts as a failure of the callback.
        let mut rc: c_int = -1;
        guard_callback("update sink", || rc = call());
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("the sink's {what} callback returned {rc}"))
        }
    }
}

impl ImageSink for CSink {
    fn begin(&self, info: &UpdateInfo) -> Result<(), String> {
        let raw = self.closure.raw();
        let f = raw.begin.ok_or("sink.begin is NULL")?;
        let uuid = to_cstring(&info.firmware_meta.uuid);
        let size = info.size.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1);
        // SAFETY: the caller gave this function and context; the string lives during the call.
        self.check("begin", || unsafe { f(uuid.as_ptr(), size, raw.context) })
    }

    fn write(&self, chunk: &[u8]) -> Result<(), String> {
        let raw = self.closure.raw();
        let f = raw.write.ok_or("sink.write is NULL")?;
        // SAFETY: as above; the bytes live during the call.
        self.check("write", || unsafe {
            f(chunk.as_ptr(), chunk.len(), raw.context)
        })
    }

    fn finish(&self) -> Result<(), String> {
        let raw = self.closure.raw();
        let f = raw.finish.ok_or("sink.finish is NULL")?;
        // SAFETY: as above.
        self.check("finish", || unsafe { f(raw.context) })
    }

    fn abort(&self, reason: &str) {
        let raw = self.closure.raw();
        if let Some(f) = raw.abort {
            let reason = to_cstring(reason);
            // SAFETY: as above.
            guard_callback("update sink", || unsafe { f(reason.as_ptr(), raw.context) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_sink() {
        let mut o = defaults();
        // SAFETY: every pointer is NULL or a live literal.
        unsafe {
            assert!(convert(&o, None).is_err());
            o.file_path = c"/tmp/x.fw".as_ptr();
            assert!(convert(&o, None).is_ok());
            o.fwup_command = c"fwup".as_ptr();
            assert!(convert(&o, None).is_err());
            o.file_path = std::ptr::null();
            assert!(convert(&o, None).is_ok());
            o.idle_timeout_ms = 0;
            assert!(convert(&o, None).is_err());
            o.idle_timeout_ms = 1;
            o.cert_file = c"/tmp/cert.pem".as_ptr();
            let err = convert(&o, None).expect_err("a cert without a key");
            assert!(err.message().contains("needs its key"), "{err:?}");
            o.key_file = c"/tmp/key.pem".as_ptr();
            o.server_name = c"fw.example".as_ptr();
            let options = convert(&o, None).expect("cert, key and server name");
            assert_eq!(
                options.download.tls.server_name.as_deref(),
                Some("fw.example")
            );
        }
    }

    #[test]
    fn a_v1_struct_gets_the_defaults_of_later_fields() {
        let mut o = defaults();
        o.struct_size = V1_SIZE;
        o.cert_file = c"/never/read".as_ptr();
        // SAFETY: `o` is a live struct; only V1_SIZE bytes are read from it.
        let read = unsafe { versioned::read(&o, V1_SIZE, defaults(), "t") }.expect("v1 read");
        assert!(read.cert_file.is_null());
    }
}
