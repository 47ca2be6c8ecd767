//! The `health` extension's C API: what the application adds to every
//! health report (metrics, alarms, checks), next to the Linux metrics the
//! library reads itself.

use std::ffi::c_char;

use nerves_hub_channel::nerves_hub::extensions::{Check, Extensions, HEALTH};

use crate::args::{opt_str_arg, str_arg};
use crate::boundary::boundary;
use crate::device::{device_ref, nhc_device, no_component};
use crate::error::{invalid, FfiResult};
use crate::nhc_result;

/// The device's extensions, when it was created with `health_enabled`.
unsafe fn health<'a>(dev: *mut nhc_device, what: &str) -> FfiResult<&'a Extensions> {
    // SAFETY: `dev` is NULL or a live device (the caller's contract).
    unsafe { device_ref(dev) }?
        .extensions()
        .filter(|e| e.offered().contains(&HEALTH))
        .ok_or_else(|| no_component(what, "health_enabled"))
}

unsafe fn name_arg<'a>(name: *const c_char) -> FfiResult<&'a str> {
    // SAFETY: `name` is NULL or a NUL-terminated string (the caller's contract).
    let name = unsafe { str_arg(name, "name") }?;
    if name.is_empty() {
        return Err(invalid("name is empty"));
    }
    Ok(name)
}

/// Sets a metric (`name`, finite `value`) sent with every later health
/// report, replacing an earlier value of that name.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, empty name, invalid UTF-8, a
/// NaN or infinite value), `NHC_ERR_INVALID_STATE` (created without
/// `health_enabled`), `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_report_metric(
    dev: *mut nhc_device,
    name: *const c_char,
    value: f64,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { device_ref(dev) }?;
        // SAFETY: `name` is NULL or a NUL-terminated string (the caller's contract).
        let name = unsafe { name_arg(name) }?;
        if !value.is_finite() {
            return Err(invalid(format!("metric {name:?}: {value} is not finite")));
        }
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { health(dev, "nhc_device_report_metric") }?.report_metric(name, value);
        Ok(())
    })
}

/// Raises alarm `name` (e.g. "BatteryLow") with `description` (NULL: "")
/// in every later health report, replacing an earlier description, until
/// `nhc_device_clear_alarm`. NervesHub shows a device's alarms on its page.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL `dev` or `name`, empty name,
/// invalid UTF-8), `NHC_ERR_INVALID_STATE` (created without
/// `health_enabled`), `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `name` and `description` are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_set_alarm(
    dev: *mut nhc_device,
    name: *const c_char,
    description: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { device_ref(dev) }?;
        // SAFETY: `name` is NULL or a NUL-terminated string (the caller's contract).
        let name = unsafe { name_arg(name) }?;
        // SAFETY: `description` is NULL or a NUL-terminated string (the caller's contract).
        let description = unsafe { opt_str_arg(description, "description") }?.unwrap_or("");
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { health(dev, "nhc_device_set_alarm") }?.set_alarm(name, description);
        Ok(())
    })
}

/// Clears an alarm raised with `nhc_device_set_alarm`. Clearing an alarm
/// that is not raised is not an error.
///
/// Errors: as `nhc_device_set_alarm`.
///
/// # Safety
/// `dev` is NULL or a live device; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_clear_alarm(
    dev: *mut nhc_device,
    name: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { device_ref(dev) }?;
        // SAFETY: `name` is NULL or a NUL-terminated string (the caller's contract).
        let name = unsafe { name_arg(name) }?;
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { health(dev, "nhc_device_clear_alarm") }?.clear_alarm(name);
        Ok(())
    })
}

/// Sets health check `name` to `pass` with `note` (NULL: "") in every
/// later health report (`checks: {name: {pass, note}}`), replacing an
/// earlier result, until `nhc_device_clear_check`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL `dev` or `name`, empty name,
/// invalid UTF-8), `NHC_ERR_INVALID_STATE` (created without
/// `health_enabled`), `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `name` and `note` are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_set_check(
    dev: *mut nhc_device,
    name: *const c_char,
    pass: bool,
    note: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { device_ref(dev) }?;
        // SAFETY: `name` is NULL or a NUL-terminated string (the caller's contract).
        let name = unsafe { name_arg(name) }?;
        // SAFETY: `note` is NULL or a NUL-terminated string (the caller's contract).
        let note = unsafe { opt_str_arg(note, "note") }?
            .unwrap_or("")
            .to_owned();
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { health(dev, "nhc_device_set_check") }?.set_check(name, Check { pass, note });
        Ok(())
    })
}

/// Removes a check set with `nhc_device_set_check`. Removing a check that
/// is not set is not an error.
///
/// Errors: as `nhc_device_set_check`.
///
/// # Safety
/// `dev` is NULL or a live device; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_clear_check(
    dev: *mut nhc_device,
    name: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { device_ref(dev) }?;
        // SAFETY: `name` is NULL or a NUL-terminated string (the caller's contract).
        let name = unsafe { name_arg(name) }?;
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        unsafe { health(dev, "nhc_device_clear_check") }?.clear_check(name);
        Ok(())
    })
}

/// Sends a health report now, as the server's `health:check` does: for
/// devices that also report on their own schedule. The report is built on
/// a library worker thread. `*sent` (may be NULL) is set to false when the
/// server has not attached `health` yet (nothing was sent), true otherwise.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL `dev`), `NHC_ERR_INVALID_STATE`
/// (created without `health_enabled`), `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`,
/// `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `sent` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_send_health_report(
    dev: *mut nhc_device,
    sent: *mut bool,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let ext = unsafe { health(dev, "nhc_device_send_health_report") }?;
        let was_sent = ext.send_health_report()?;
        if !sent.is_null() {
            // SAFETY: `sent` is writable (the caller's contract).
            unsafe { sent.write(was_sent) };
        }
        Ok(())
    })
}
