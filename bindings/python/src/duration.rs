//! Durations given in seconds (Python numbers) to `Duration`, refused with
//! the argument's name when negative, not finite, or zero where it must not be.

use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::invalid;

/// A duration in seconds that must be positive.
pub fn seconds(value: f64, name: &str) -> PyResult<Duration> {
    if value <= 0.0 {
        return Err(invalid(format!(
            "{name} must be greater than zero, got {value}"
        )));
    }
    seconds_or_zero(value, name)
}

/// A duration in seconds that may be zero.
pub fn seconds_or_zero(value: f64, name: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        invalid(format!(
            "{name} must be a finite number of seconds >= 0, got {value}"
        ))
    })
}

/// An optional timeout argument: `None` means `default`.
pub fn timeout_or(value: Option<f64>, default: Duration, name: &str) -> PyResult<Duration> {
    value.map_or(Ok(default), |v| seconds(v, name))
}
