//! Writing a snapshot back out as NDJSON or CSV, in the forms the importers
//! read, so that export → import round-trips.

use std::io::Write;

use dancu_engine::{BiometricTemplates, Modality, Snapshot};

use crate::csvform;
use crate::error::{Error, Result};
use crate::import::Format;

/// Options of an export.
#[derive(Clone, Copy, Debug)]
pub struct ExportOptions {
    /// Output format.
    pub format: Format,
    /// Write at most this many records.
    pub limit: Option<u64>,
    /// Include the biometric template identifiers (for re-import; the API
    /// never shows them). Costs 34 bytes of memory per exported record.
    pub with_templates: bool,
}

/// Writes the records of `snapshot` (in snapshot order) to `out`; returns how
/// many were written.
pub fn export<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    options: &ExportOptions,
    out: impl Write,
) -> Result<u64> {
    let len = snapshot.len() as u64;
    let count = options.limit.map_or(len, |l| l.min(len));
    let templates = if options.with_templates {
        let mut t = vec![BiometricTemplates::default(); count as usize];
        for (modality, digest, index) in snapshot.biometric_entries() {
            if let Some(slot) = t.get_mut(index as usize) {
                match modality {
                    Modality::Face => slot.face = Some(digest),
                    Modality::Fingerprint => slot.fingerprint = Some(digest),
                }
            }
        }
        t
    } else {
        Vec::new()
    };
    let to_stdout = |e: std::io::Error| Error::Io {
        path: "output".into(),
        source: e,
    };
    let views = (0..count as u32).filter_map(|i| snapshot.record(i));
    let mut written = 0;
    match options.format {
        Format::Ndjson => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
            for view in views {
                let mut citizen = view.to_citizen();
                if let Some(t) = templates.get(view.index() as usize) {
                    citizen.biometric_templates = *t;
                }
                serde_json::to_writer(&mut out, &citizen).map_err(|e| to_stdout(e.into()))?;
                out.write_all(b"\n").map_err(to_stdout)?;
                written += 1;
            }
            out.flush().map_err(to_stdout)?;
        }
        Format::Csv => {
            let mut w = csv::WriterBuilder::new()
                .buffer_capacity(1 << 20)
                .from_writer(out);
            let csv_err = |e: csv::Error| match e.into_kind() {
                csv::ErrorKind::Io(io) => to_stdout(io),
                other => to_stdout(std::io::Error::other(format!("{other:?}"))),
            };
            w.write_record(csvform::COLUMNS).map_err(csv_err)?;
            for view in views {
                let mut citizen = view.to_citizen();
                if let Some(t) = templates.get(view.index() as usize) {
                    citizen.biometric_templates = *t;
                }
                w.write_record(csvform::to_row(&citizen)).map_err(csv_err)?;
                written += 1;
            }
            w.flush().map_err(to_stdout)?;
        }
    }
    Ok(written)
}
