//! One FAISS index per watch list, keyed by template id. Inner product over unit vectors is
//! cosine similarity. Persisted to disk as a cache, valid only while its fingerprint matches
//! the store; anything missing, stale or corrupt is rebuilt from the store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use faiss::index::IndexImpl;
use faiss::index::TryClone;
use faiss::selector::IdSelector;
use faiss::{Idx, Index, MetricType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::watchlist::store::{Fingerprint, TemplateRow};

/// Default factory: exact search, supports removal. "auto", "IDMap2,HNSW32|efSearch=128" or
/// "IDMap2,IVF…|nprobe=…" serve large lists (removal then rebuilds).
pub const DEFAULT_FACTORY: &str = "IDMap2,Flat";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Meta {
    fingerprint: Fingerprint,
    factory: String,
    model: String,
    dim: u32,
}

/// Who a template belongs to.
#[derive(Debug, Clone)]
pub struct Owner {
    pub subject: String,
    pub name: Option<String>,
}

pub struct ListIndex {
    index: IndexImpl,
    owners: HashMap<i64, Owner>,
    factory: String,
    model: String,
    dim: u32,
}

/// A raw hit: template id and cosine score.
pub type Hit = (i64, f32);

/// The default index spec: exact search for ordinary lists, an inverted file for very large ones.
pub const DEFAULT_SPEC: &str = "auto";

/// With the `auto` factory, lists up to this many templates are searched exactly.
pub const AUTO_FLAT_MAX: usize = 50_000;

/// The FAISS factory string and search parameters of a spec: `FACTORY[|PARAMS]` (for example
/// `IDMap2,HNSW32|efSearch=128`, `IDMap2,IVF4096,Flat|nprobe=64`) or `auto`: exact search up to
/// [`AUTO_FLAT_MAX`] templates, beyond it an inverted file with about 4 sqrt(n) lists probing
/// 1/64 of them (measured on 1M templates: p99 1.5 ms, recall@1 0.997 against exact search;
/// HNSW32 needed efSearch 256 for 0.967 at p99 6.4 ms, see BENCHMARKS.md).
pub fn resolve(spec: &str, templates: usize) -> (String, String) {
    if spec == "auto" {
        if templates <= AUTO_FLAT_MAX {
            return (DEFAULT_FACTORY.to_string(), String::new());
        }
        let lists = (4.0 * (templates as f64).sqrt()).log2().round().exp2().clamp(256.0, 65_536.0) as usize;
        return (format!("IDMap2,IVF{lists},Flat"), format!("nprobe={}", (lists / 64).max(8)));
    }
    let (f, p) = spec.split_once('|').unwrap_or((spec, ""));
    (f.to_string(), p.to_string())
}

/// Sets FAISS search-time parameters (`efSearch=128`, `nprobe=32`, comma-separated) on an index,
/// through wrappers such as IDMap2 (FAISS's ParameterSpace).
pub fn apply_params(index: &mut IndexImpl, params: &str) -> Result<()> {
    if params.is_empty() {
        return Ok(());
    }
    let c = std::ffi::CString::new(params).map_err(|_| Error::Index(format!("bad index parameters {params:?}")))?;
    // SAFETY: `ps` is created, used once on a live index and freed here; FAISS reports a bad
    // parameter name as a non-zero return (C++ exception caught by the C API).
    let rc = unsafe {
        let mut ps = std::ptr::null_mut();
        if faiss_sys::faiss_ParameterSpace_new(&mut ps) != 0 {
            return Err(Error::Index("cannot create a FAISS ParameterSpace".into()));
        }
        let rc = faiss_sys::faiss_ParameterSpace_set_index_parameters(ps, index.inner_ptr(), c.as_ptr());
        faiss_sys::faiss_ParameterSpace_free(ps);
        rc
    };
    if rc != 0 {
        return Err(Error::Index(format!("index parameters {params:?} do not apply to this index")));
    }
    Ok(())
}

impl ListIndex {
    /// Builds a fresh index over `templates`.
    pub fn build(templates: &[TemplateRow], factory: &str, model: &str, dim: u32) -> Result<Self> {
        let (spec, params) = resolve(factory, templates.len());
        let mut index = faiss::index_factory(dim, &spec, MetricType::InnerProduct)?;
        let mut owners = HashMap::with_capacity(templates.len());
        let mut data = Vec::with_capacity(templates.len() * dim as usize);
        let mut ids = Vec::with_capacity(templates.len());
        for t in templates {
            if t.model != model {
                return Err(Error::ModelMismatch { stored: t.model.clone(), loaded: model.to_string() });
            }
            if t.embedding.len() != dim as usize {
                return Err(Error::Index(format!("template {} has {} dims, expected {dim}", t.id, t.embedding.len())));
            }
            data.extend_from_slice(&t.embedding);
            ids.push(Idx::new(t.id as u64));
            owners.insert(t.id, Owner { subject: t.subject.clone(), name: t.name.clone() });
        }
        if !index.is_trained() && !data.is_empty() {
            index.train(&data)?;
        }
        if !data.is_empty() {
            index.add_with_ids(&data, &ids)?;
        }
        apply_params(&mut index, &params)?;
        Ok(Self { index, owners, factory: factory.to_string(), model: model.to_string(), dim })
    }

    /// Loads the persisted index if it matches `fingerprint`, else rebuilds and persists it.
    /// Returns the index and whether it was rebuilt.
    pub fn load_or_build(
        path: &Path,
        fingerprint: Fingerprint,
        templates: impl FnOnce() -> Result<Vec<TemplateRow>>,
        factory: &str,
        model: &str,
        dim: u32,
    ) -> Result<(Self, bool)> {
        let templates = templates()?;
        let expected = Meta { fingerprint, factory: factory.into(), model: model.into(), dim };
        // With `auto`, a list that grew past AUTO_FLAT_MAX since it was written is rebuilt as
        // an inverted file (the new search parameters do not apply to the old index).
        if let Some(mut index) = Self::try_load(path, &expected)
            && index.ntotal() == fingerprint.count as u64
            && apply_params(&mut index, &resolve(factory, templates.len()).1).is_ok()
        {
            let owners =
                templates.iter().map(|t| (t.id, Owner { subject: t.subject.clone(), name: t.name.clone() })).collect();
            let li = Self { index, owners, factory: factory.into(), model: model.into(), dim };
            return Ok((li, false));
        }
        let li = Self::build(&templates, factory, model, dim)?;
        li.save(path, fingerprint)?;
        Ok((li, true))
    }

    fn try_load(path: &Path, expected: &Meta) -> Option<IndexImpl> {
        let meta: Meta = serde_json::from_slice(&std::fs::read(meta_path(path)).ok()?).ok()?;
        if &meta != expected {
            tracing::info!(index = %path.display(), "index is stale: rebuilding from the store");
            return None;
        }
        match read_index_file(path) {
            Ok(ix) if ix.d() == expected.dim => Some(ix),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(index = %path.display(), error = %e, "index unreadable: rebuilding from the store");
                None
            }
        }
    }

    /// Writes the index and its metadata atomically (temp file + rename).
    pub fn save(&self, path: &Path, fingerprint: Fingerprint) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_index_file(&self.index, path)?;
        let meta = Meta { fingerprint, factory: self.factory.clone(), model: self.model.clone(), dim: self.dim };
        let mp = meta_path(path);
        let tmp_meta = mp.with_extension("json.tmp");
        std::fs::write(&tmp_meta, serde_json::to_vec(&meta).unwrap_or_default())
            .map_err(|e| Error::io(&tmp_meta, e))?;
        std::fs::rename(&tmp_meta, &mp).map_err(|e| Error::io(&mp, e))?;
        Ok(())
    }

    pub fn add(&mut self, ids: &[i64], embeddings: &[Vec<f32>], owner: &Owner) -> Result<()> {
        let mut data = Vec::with_capacity(ids.len() * self.dim as usize);
        for e in embeddings {
            if e.len() != self.dim as usize {
                return Err(Error::Index(format!("embedding has {} dims, index has {}", e.len(), self.dim)));
            }
            data.extend_from_slice(e);
        }
        let fids: Vec<Idx> = ids.iter().map(|&i| Idx::new(i as u64)).collect();
        self.index.add_with_ids(&data, &fids)?;
        for &i in ids {
            self.owners.insert(i, owner.clone());
        }
        Ok(())
    }

    /// Removes templates; returns false when the index type cannot remove (caller rebuilds).
    pub fn remove(&mut self, ids: &[i64]) -> Result<bool> {
        for i in ids {
            self.owners.remove(i);
        }
        let fids: Vec<Idx> = ids.iter().map(|&i| Idx::new(i as u64)).collect();
        let sel = IdSelector::batch(&fids)?;
        Ok(self.index.remove_ids(&sel).is_ok())
    }

    /// A copy (FAISS `clone_index`: the vectors are copied), to persist off the lock.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            index: self.index.try_clone()?,
            owners: self.owners.clone(),
            factory: self.factory.clone(),
            model: self.model.clone(),
            dim: self.dim,
        })
    }

    /// The fingerprint of the templates this index holds (the store's, when both agree).
    pub fn fingerprint(&self) -> Fingerprint {
        let ids = self.owners.keys();
        Fingerprint { count: ids.len() as i64, id_sum: ids.clone().sum(), max_id: ids.max().copied().unwrap_or(0) }
    }

    pub fn len(&self) -> u64 {
        self.index.ntotal()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn owner(&self, template_id: i64) -> Option<&Owner> {
        self.owners.get(&template_id)
    }

    /// Top `k` templates by cosine for each query (queries concatenated).
    pub fn search(&mut self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>> {
        let n = queries.len() / self.dim as usize;
        if n == 0 || self.is_empty() || k == 0 {
            return Ok(vec![Vec::new(); n]);
        }
        let k = k.min(self.len() as usize);
        let res = self.index.search(queries, k)?;
        Ok((0..n)
            .map(|q| {
                (0..k)
                    .filter_map(|j| {
                        let id = res.labels[q * k + j].get()?;
                        Some((id as i64, res.distances[q * k + j]))
                    })
                    .collect()
            })
            .collect())
    }
}

/// Writes the index to `path` atomically (temp file + rename). In an encrypted data folder
/// (`crate::vault`) FAISS writes into an anonymous memory file and only the sealed bytes reach
/// the disk: the index holds every template of the list.
fn write_index_file(index: &IndexImpl, path: &Path) -> Result<()> {
    let tmp = path.with_extension("faiss.tmp");
    if crate::vault::key_for(path).is_some() {
        let mem = MemFile::new()?;
        faiss::write_index(index, mem.path())?;
        let plain = mem.contents()?;
        let sealed = crate::vault::for_disk(path, &plain)?;
        std::fs::write(&tmp, &sealed).map_err(|e| Error::io(&tmp, e))?;
    } else {
        let tmp_str = tmp.to_str().ok_or_else(|| Error::Index("non-UTF-8 index path".into()))?;
        faiss::write_index(index, tmp_str)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn read_index_file(path: &Path) -> Result<IndexImpl> {
    if crate::vault::key_for(path).is_none() {
        let p = path.to_str().ok_or_else(|| Error::Index("non-UTF-8 index path".into()))?;
        return Ok(faiss::read_index(p)?);
    }
    let plain = crate::vault::read(path).map_err(|e| Error::io(path, e))?;
    let mem = MemFile::new()?;
    mem.fill(&plain)?;
    Ok(faiss::read_index(mem.path())?)
}

/// An anonymous in-memory file (memfd), named through `/proc/self/fd` for FAISS.
struct MemFile {
    file: std::fs::File,
    path: String,
}

impl MemFile {
    fn new() -> Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: a constant NUL-terminated name; the returned descriptor is checked and then
        // owned by the File alone.
        let fd = unsafe { libc::memfd_create(c"facewatch-index".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::Index(format!("memfd_create: {}", std::io::Error::last_os_error())));
        }
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        Ok(Self { file, path: format!("/proc/self/fd/{fd}") })
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn contents(&self) -> Result<Vec<u8>> {
        use std::io::{Read, Seek};
        let mut f = &self.file;
        let mut out = Vec::new();
        f.seek(std::io::SeekFrom::Start(0))
            .and_then(|_| f.read_to_end(&mut out))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(out)
    }

    fn fill(&self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        (&self.file).write_all(bytes).map_err(|e| Error::io(&self.path, e))
    }
}

fn meta_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_chooses_by_size_and_parameters_reach_the_index() {
        let r = |spec: &str, n: usize| {
            let (f, p) = resolve(spec, n);
            (f, p)
        };
        assert_eq!(r("auto", 10), (DEFAULT_FACTORY.to_string(), String::new()));
        assert_eq!(r("auto", 1_000_000), ("IDMap2,IVF4096,Flat".to_string(), "nprobe=64".to_string()));
        assert_eq!(r("auto", AUTO_FLAT_MAX + 1).0, "IDMap2,IVF1024,Flat");
        assert_eq!(r("IDMap2,IVF64,Flat|nprobe=8", 0), ("IDMap2,IVF64,Flat".to_string(), "nprobe=8".to_string()));
        let mut hnsw = faiss::index_factory(8, "IDMap2,HNSW16", MetricType::InnerProduct).unwrap();
        apply_params(&mut hnsw, "efSearch=64").unwrap();
        assert!(apply_params(&mut hnsw, "bogus=1").is_err(), "an unknown parameter is an error");
        let mut flat = faiss::index_factory(8, DEFAULT_FACTORY, MetricType::InnerProduct).unwrap();
        assert!(apply_params(&mut flat, "nprobe=4").is_err(), "nprobe means nothing to a flat index");
    }
}
