//! Checks of the declared volumes.

use super::check::{Problems, dns_label, index, int_in, join, list_items, required, typed, unknown_keys};
use crate::error::Rule;
use crate::raw::{RawEmptyDir, RawVolume};
use crate::spec::{AccessMode, VolumeKind};

/// Largest memory-backed scratch directory, in MiB.
pub const MAX_EMPTY_DIR_MIB: i64 = 256;

/// A volume that passed its own checks; the access mode is settled from the mounts later.
pub struct CheckedVolume {
    /// Its name.
    pub name: String,
    /// Persistent with this size, or scratch.
    pub kind: VolumeKind,
}

/// Checks the `volumes` list.
pub fn check_volumes(p: &mut Problems, raw: &crate::raw::List<RawVolume>) -> Vec<CheckedVolume> {
    let mut volumes: Vec<CheckedVolume> = Vec::new();
    for (i, raw) in list_items(p, "volumes", raw, "volumes like `{name: data, size: 1Gi}`") {
        let at = index("volumes", i);
        let Some(volume) = check_volume(p, &at, raw) else {
            continue;
        };
        if volumes.iter().any(|v| v.name == volume.name) {
            p.add(
                join(&at, "name"),
                Rule::Duplicate,
                format!("`{}` is declared twice: volume names must be unique.", volume.name),
            );
            continue;
        }
        volumes.push(volume);
    }
    volumes
}

fn check_volume(p: &mut Problems, path: &str, raw: &RawVolume) -> Option<CheckedVolume> {
    unknown_keys::<RawVolume>(p, path, &raw.unknown);
    let name_at = join(path, "name");
    let name = required(p, &name_at, &raw.name, "a name like `data`")
        .filter(|n| dns_label(p, &name_at, n))
        .cloned();
    let size = typed(p, &join(path, "size"), &raw.size, "a size like `1Gi` or `500Mi`");
    let empty_dir = typed(
        p,
        &join(path, "emptyDir"),
        &raw.empty_dir,
        "a mapping like `{sizeLimit: 64}`",
    );
    let kind = match (&raw.size, &raw.empty_dir) {
        (None, None) => {
            p.add(join(path, "size"), Rule::Required, "is required: give a size like `1Gi` for a persistent volume, or write `emptyDir: {}` for a scratch directory in memory.");
            None
        }
        (Some(_), Some(_)) => {
            p.add(
                path,
                Rule::Conflict,
                "give either `size` (a persistent volume) or `emptyDir` (a scratch directory in memory), not both.",
            );
            None
        }
        (Some(_), None) => check_size(p, &join(path, "size"), size?),
        (None, Some(_)) => check_empty_dir(p, &join(path, "emptyDir"), empty_dir?),
    };
    Some(CheckedVolume {
        name: name?,
        kind: kind?,
    })
}

fn check_size(p: &mut Problems, path: &str, size: &str) -> Option<VolumeKind> {
    let (number, unit) = size.split_at(size.len().saturating_sub(2));
    let valid_number = !number.is_empty()
        && number.len() <= 3
        && !number.starts_with('0')
        && number.bytes().all(|b| b.is_ascii_digit());
    if valid_number && (unit == "Mi" || unit == "Gi") {
        return Some(VolumeKind::Persistent {
            size: size.to_owned(),
            access: AccessMode::ReadWriteOnce,
        });
    }
    p.add(
        path,
        Rule::InvalidFormat,
        format!("`{size}` is not a valid size: write 1 to 999 followed by `Mi` or `Gi`, like `10Gi`."),
    );
    None
}

fn check_empty_dir(p: &mut Problems, path: &str, raw: &RawEmptyDir) -> Option<VolumeKind> {
    unknown_keys::<RawEmptyDir>(p, path, &raw.unknown);
    let at = join(path, "sizeLimit");
    let limit = int_in(p, &at, &raw.size_limit, 1..=MAX_EMPTY_DIR_MIB, "a whole number of MiB");
    if raw.size_limit.is_some() && limit.is_none() {
        return None;
    }
    let size_limit_mib = u32::try_from(limit.unwrap_or(MAX_EMPTY_DIR_MIB)).ok()?;
    Some(VolumeKind::EmptyDir { size_limit_mib })
}
