//! A folder of calibration images as a [`CalibSource`].

use std::path::{Path, PathBuf};

use edgedetr_quantizer::calib::CalibSource;

use edgedetr::kernels::Kernels;
use edgedetr_vision::Preprocessor;

/// JPEG and PNG files of a folder (sorted by name), decoded one at a time.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    paths: Vec<PathBuf>,
    pre: PreprocessorBox,
}

/// The folder's [`Preprocessor`] (buffers reused from image to image).
#[derive(Default)]
struct PreprocessorBox(Preprocessor);

impl Clone for PreprocessorBox {
    fn clone(&self) -> Self {
        PreprocessorBox::default()
    }
}

impl std::fmt::Debug for PreprocessorBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Preprocessor")
    }
}

impl ImageFolder {
    /// Lists the `.jpg`, `.jpeg` and `.png` files of `dir`, at most `limit`.
    pub fn open(dir: &Path, limit: Option<usize>) -> Result<Self, String> {
        let mut paths = Self::list(dir)?;
        if let Some(n) = limit {
            paths.truncate(n);
        }
        if paths.is_empty() {
            return Err(format!("no JPEG or PNG images in {}", dir.display()));
        }
        Ok(Self::from_paths(paths))
    }

    /// The `.jpg`, `.jpeg` and `.png` files of `dir`, sorted by name.
    pub fn list(dir: &Path) -> Result<Vec<PathBuf>, String> {
        let rd = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read image folder {}: {e}", dir.display()))?;
        let mut paths: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                })
            })
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// These image files, in this order.
    pub fn from_paths(paths: Vec<PathBuf>) -> Self {
        ImageFolder {
            paths,
            pre: PreprocessorBox::default(),
        }
    }

    /// The image files.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl CalibSource for ImageFolder {
    fn len(&self) -> usize {
        self.paths.len()
    }

    fn label(&self, i: usize) -> String {
        self.paths[i].display().to_string()
    }

    fn load(&mut self, i: usize, s: usize, out: &mut [f32]) -> Result<(), String> {
        let path = &self.paths[i];
        // Errors name neither the file nor the image: the caller labels them.
        let img = edgedetr_vision::file::load(path).map_err(|e| e.to_string())?;
        // The calibration graph runs the scalar-exact float path anyway; the
        // image kernels are bit-exact on every path.
        let k = Kernels::scalar();
        self.pre
            .0
            .chw_f32(&k, &img.rgb, (img.width, img.height), s, out)
            .map_err(|e| format!("preprocessing: {e}"))
    }
}
