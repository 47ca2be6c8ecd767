//! The `geo` extension: answers `geo:location:request` with
//! `geo:location:update` (protocol section 4). Where the device is comes from
//! the application ([`GeoProvider`]): a GNSS receiver, a cellular modem, a
//! fixed installation address, or a GeoIP lookup.

use serde_json::{json, Value};

/// A position, as NervesHub shows it on its map.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    /// Where it came from: "gps", "geoip", "manual"...
    pub source: String,
    /// Radius of uncertainty in metres, when known.
    pub accuracy: Option<u32>,
}

/// Locates the device. May block (a modem query, an HTTP lookup): it is
/// called on a blocking worker thread, never on an I/O thread. An error is
/// `(error_code, error_description)`, sent to the server as is.
pub trait GeoProvider: Send + Sync {
    fn locate(&self) -> Result<Location, (String, String)>;
}

impl<F> GeoProvider for F
where
    F: Fn() -> Result<Location, (String, String)> + Send + Sync,
{
    fn locate(&self) -> Result<Location, (String, String)> {
        self()
    }
}

fn error(code: &str, description: &str) -> Value {
    json!({"error_code": code, "error_description": description})
}

/// The `geo:location:update` payload for a provider's answer. Coordinates out
/// of range (or NaN) are reported as an `invalid_location` error rather than
/// put on the map.
pub fn update_payload(result: &Result<Location, (String, String)>) -> Value {
    match result {
        Ok(loc) => {
            let valid =
                (-90.0..=90.0).contains(&loc.latitude) && (-180.0..=180.0).contains(&loc.longitude);
            if !valid {
                return error(
                    "invalid_location",
                    &format!(
                        "the location provider returned latitude {} longitude {}, out of range",
                        loc.latitude, loc.longitude
                    ),
                );
            }
            let mut v = json!({
                "latitude": loc.latitude,
                "longitude": loc.longitude,
                "source": loc.source,
            });
            if let Some(acc) = loc.accuracy {
                v["accuracy"] = json!(acc);
            }
            v
        }
        Err((code, description)) => error(code, description),
    }
}

/// The answer when the device has no provider.
pub fn no_provider_payload() -> Value {
    error(
        "no_provider",
        "this device has no location provider (ExtensionsOptions::geo is not set)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(latitude: f64, longitude: f64, accuracy: Option<u32>) -> Location {
        Location {
            latitude,
            longitude,
            source: "gps".into(),
            accuracy,
        }
    }

    #[test]
    fn location_payload() {
        assert_eq!(
            update_payload(&Ok(loc(52.5, 13.4, Some(25)))),
            json!({"latitude": 52.5, "longitude": 13.4, "source": "gps", "accuracy": 25})
        );
        assert_eq!(
            update_payload(&Ok(loc(-33.9, 151.2, None))),
            json!({"latitude": -33.9, "longitude": 151.2, "source": "gps"})
        );
    }

    #[test]
    fn provider_errors_and_bad_coordinates() {
        let e = Err(("no_fix".to_owned(), "GNSS has no fix".to_owned()));
        assert_eq!(
            update_payload(&e),
            json!({"error_code": "no_fix", "error_description": "GNSS has no fix"})
        );
        for (lat, lon) in [(91.0, 0.0), (0.0, -181.0), (f64::NAN, 0.0)] {
            assert_eq!(
                update_payload(&Ok(loc(lat, lon, None)))["error_code"],
                "invalid_location"
            );
        }
        assert_eq!(no_provider_payload()["error_code"], "no_provider");
    }

    #[test]
    fn closures_are_providers() {
        let p = || Ok(loc(1.0, 2.0, None));
        assert_eq!(GeoProvider::locate(&p), Ok(loc(1.0, 2.0, None)));
    }
}
