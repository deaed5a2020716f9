//! `Secret` (Kuma `system.v1alpha1.Secret`): bytes (for the gateway, a PEM bundle) referenced by name.

use serde::{Deserialize, Serialize};

use super::common::Base64Bytes;

/// The spec of a `Secret`. `Debug` never shows the data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Secret {
    /// The secret bytes (base64 in YAML).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Base64Bytes>,
}
