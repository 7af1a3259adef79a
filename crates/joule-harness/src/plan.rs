//! The run plan: which kernels, precisions, named shapes and backends one `joule run` measures.
//!
//! A plan is the cross product kernel × dtype × shape × backend, restricted by a [`PlanFilter`]. Shapes come in named
//! sets ([`ShapeSet`]); every shape is named after the layer it comes from (see [`crate::catalog`]).

use crate::catalog::{self, NamedShape, ShapeSpec};
use joule_core::{DType, Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One kernel the harness measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelKind {
    /// `C = A·B` (alpha = 1, beta = 0).
    Gemm,
    /// The depthwise k×k step of a depthwise-separable block.
    Depthwise,
    /// The pointwise 1×1 step of a depthwise-separable block.
    Pointwise,
    /// Depthwise then pointwise in one pass, never materialising the whole depthwise output.
    DwsepFused,
    /// Scaled dot-product attention.
    Attention,
}

impl KernelKind {
    /// All kernels, in report order.
    pub const ALL: [KernelKind; 5] =
        [KernelKind::Gemm, KernelKind::Depthwise, KernelKind::Pointwise, KernelKind::DwsepFused, KernelKind::Attention];

    /// The name used in results, file names and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Gemm => "gemm",
            KernelKind::Depthwise => "depthwise",
            KernelKind::Pointwise => "pointwise",
            KernelKind::DwsepFused => "dwsep-fused",
            KernelKind::Attention => "attention",
        }
    }

    /// Whether this kernel runs on shapes of this kind.
    pub fn applies_to(self, spec: &ShapeSpec) -> bool {
        matches!(
            (self, spec),
            (KernelKind::Gemm, ShapeSpec::Gemm(_))
                | (KernelKind::Depthwise | KernelKind::Pointwise | KernelKind::DwsepFused, ShapeSpec::DwConv(_))
                | (KernelKind::Attention, ShapeSpec::Attention(_))
        )
    }

    /// Parses a comma-separated list of kernel names. `dwconv` stands for its three kernels (depthwise, pointwise,
    /// dwsep-fused); `fused` is accepted for `dwsep-fused`.
    pub fn parse_list(list: &str) -> Result<Vec<KernelKind>> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.eq_ignore_ascii_case("dwconv") {
                out.extend([KernelKind::Depthwise, KernelKind::Pointwise, KernelKind::DwsepFused]);
            } else {
                out.push(item.parse()?);
            }
        }
        if out.is_empty() {
            return Err(Error::InvalidArgument("empty kernel list".into()));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl fmt::Display for KernelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KernelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "gemm" => Ok(KernelKind::Gemm),
            "depthwise" | "dw" => Ok(KernelKind::Depthwise),
            "pointwise" | "pw" => Ok(KernelKind::Pointwise),
            "dwsep-fused" | "fused" | "dwsep_fused" => Ok(KernelKind::DwsepFused),
            "attention" | "attn" => Ok(KernelKind::Attention),
            _ => Err(Error::InvalidArgument(format!(
                "unknown kernel `{s}` (expected gemm, depthwise, pointwise, dwsep-fused, attention, or dwconv for \
                 the three depthwise-separable kernels)"
            ))),
        }
    }
}

/// A named set of shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShapeSet {
    /// CI-sized: one scaled-down shape per kernel family (about 30 s for everything on 2 cores).
    Quick,
    /// BERT-base at sequence 128 (and attention at 512), MobileNetV2 and EfficientNet-B0 blocks, batch 1: a few
    /// minutes on 2 CPU cores.
    Default,
    /// Everything: the default set, sequence 512 projections, more CNN blocks and the 7B decoder.
    Full,
    /// BERT-base / DistilBERT layers only (sequence 128 and 512).
    Bert,
    /// MobileNetV2 and EfficientNet-B0 depthwise-separable blocks only.
    Cnn,
    /// A 7B decoder's linear layers (4096×4096, 4096×11008) and attention (32 heads × 128).
    Decoder7b,
}

impl ShapeSet {
    /// All sets.
    pub const ALL: [ShapeSet; 6] =
        [ShapeSet::Quick, ShapeSet::Default, ShapeSet::Full, ShapeSet::Bert, ShapeSet::Cnn, ShapeSet::Decoder7b];

    /// The name used in results, file names and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            ShapeSet::Quick => "quick",
            ShapeSet::Default => "default",
            ShapeSet::Full => "full",
            ShapeSet::Bert => "bert",
            ShapeSet::Cnn => "cnn",
            ShapeSet::Decoder7b => "decoder-7b",
        }
    }

    /// The shapes of this set.
    pub fn shapes(self) -> Vec<NamedShape> {
        catalog::shapes(self)
    }
}

impl fmt::Display for ShapeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ShapeSet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ShapeSet::ALL.into_iter().find(|set| set.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            let names: Vec<_> = ShapeSet::ALL.iter().map(|s| s.name()).collect();
            Error::InvalidArgument(format!("unknown shape set `{s}` (expected one of {})", names.join(", ")))
        })
    }
}

/// One measurement to make: a kernel at a precision on a named shape with a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// The kernel.
    pub kernel: KernelKind,
    /// The storage precision.
    pub dtype: DType,
    /// The shape, with its name.
    pub shape: NamedShape,
    /// The backend's name (`cpu`, `cuda`, ...).
    pub backend: String,
}

impl Case {
    /// A stable identifier: `kernel/dtype/shape/backend`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}/{}", self.kernel, self.dtype, self.shape.name, self.backend)
    }

    /// FLOPs of one call (the shape's documented count for this kernel).
    pub fn flops(&self) -> u64 {
        match (&self.shape.spec, self.kernel) {
            (ShapeSpec::Gemm(s), _) => s.flops(),
            (ShapeSpec::DwConv(s), KernelKind::Depthwise) => s.dw_flops(),
            (ShapeSpec::DwConv(s), KernelKind::Pointwise) => s.pw_flops(),
            (ShapeSpec::DwConv(s), _) => s.flops(),
            (ShapeSpec::Attention(s), _) => s.flops(),
        }
    }

    /// Minimum bytes one call must move (every input read once, every output written once).
    pub fn min_bytes(&self) -> u64 {
        match (&self.shape.spec, self.kernel) {
            (ShapeSpec::Gemm(s), _) => s.min_bytes(self.dtype),
            (ShapeSpec::DwConv(s), KernelKind::Depthwise) => s.dw_min_bytes(self.dtype),
            (ShapeSpec::DwConv(s), KernelKind::Pointwise) => s.pw_min_bytes(self.dtype),
            (ShapeSpec::DwConv(s), _) => s.min_bytes(self.dtype),
            (ShapeSpec::Attention(s), _) => s.min_bytes(self.dtype),
        }
    }

    /// The reduction length the pass rule's tolerance is computed for: GEMM k; depthwise kh·kw; pointwise and
    /// fused the pointwise reduction (C·multiplier; the fused path's extra rounding of the depthwise output is
    /// source 3 of the pass rule, already in its 4u term); attention max(lk, head_dim).
    pub fn reduction_len(&self) -> usize {
        match (&self.shape.spec, self.kernel) {
            (ShapeSpec::Gemm(s), _) => s.k,
            (ShapeSpec::DwConv(s), KernelKind::Depthwise) => s.kernel_h * s.kernel_w,
            (ShapeSpec::DwConv(s), _) => s.dw_channels(),
            (ShapeSpec::Attention(s), _) => s.lk.max(s.head_dim),
        }
    }
}

/// Restricts a plan. `None` means "no restriction" for each field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanFilter {
    /// Only these kernels.
    pub kernels: Option<Vec<KernelKind>>,
    /// Only these precisions.
    pub dtypes: Option<Vec<DType>>,
    /// Only these backends (must be available).
    pub backends: Option<Vec<String>>,
    /// Only shapes whose name contains one of these substrings.
    pub name_contains: Option<Vec<String>>,
}

impl PlanFilter {
    /// Parses a comma-separated dtype list (`f32,bf16`).
    pub fn parse_dtypes(list: &str) -> Result<Vec<DType>> {
        let mut out: Vec<DType> =
            list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<Result<_>>()?;
        if out.is_empty() {
            return Err(Error::InvalidArgument("empty dtype list".into()));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Splits a comma-separated list of names.
    pub fn parse_names(list: &str) -> Vec<String> {
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}

/// A backend as the plan sees it: its name and, when it cannot run here, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// Backend name.
    pub name: String,
    /// `None` when usable here, else the reason it is not.
    pub unavailable: Option<String>,
    /// The (kernel, dtype) pairs it runs; `None` = all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports: Option<Vec<(KernelKind, DType)>>,
}

impl BackendStatus {
    /// A backend usable here that runs every kernel at every dtype.
    pub fn available(name: &str) -> Self {
        BackendStatus { name: name.into(), unavailable: None, supports: None }
    }

    /// Whether it runs `kernel` at `dtype`.
    pub fn runs(&self, kernel: KernelKind, dtype: DType) -> bool {
        self.supports.as_ref().is_none_or(|s| s.contains(&(kernel, dtype)))
    }
}

/// The cases of one run, in execution order (shape by shape, then kernel, dtype, backend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The shape sets the cases come from.
    pub sets: Vec<ShapeSet>,
    /// The cases.
    pub cases: Vec<Case>,
    /// Backends known to this build that were left out, with the reason.
    pub skipped_backends: Vec<BackendStatus>,
}

impl Plan {
    /// Builds the plan for `sets` restricted by `filter`, over the `backends` this build knows.
    ///
    /// Errors: a backend named in the filter that is unknown or unavailable here, or a filter that leaves no case.
    pub fn build(sets: &[ShapeSet], filter: &PlanFilter, backends: &[BackendStatus]) -> Result<Plan> {
        if sets.is_empty() {
            return Err(Error::InvalidArgument("no shape set given".into()));
        }
        if let Some(wanted) = &filter.backends {
            for name in wanted {
                match backends.iter().find(|b| &b.name == name) {
                    None => {
                        let known: Vec<_> = backends.iter().map(|b| b.name.as_str()).collect();
                        return Err(Error::InvalidArgument(format!(
                            "unknown backend `{name}` (this build knows {})",
                            known.join(", ")
                        )));
                    }
                    Some(BackendStatus { unavailable: Some(why), .. }) => {
                        return Err(Error::Unsupported(format!("backend `{name}` is not available here: {why}")));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut skipped_backends = Vec::new();
        let mut usable = Vec::new();
        for b in backends {
            let wanted = filter.backends.as_ref().is_none_or(|w| w.contains(&b.name));
            if !wanted {
                continue;
            }
            if b.unavailable.is_some() {
                skipped_backends.push(b.clone());
            } else {
                usable.push(b);
            }
        }
        let mut shapes: Vec<NamedShape> = Vec::new();
        for set in sets {
            for s in set.shapes() {
                if !shapes.iter().any(|t| t.name == s.name) {
                    shapes.push(s);
                }
            }
        }
        let kernels = filter.kernels.clone().unwrap_or_else(|| KernelKind::ALL.to_vec());
        let dtypes = filter.dtypes.clone().unwrap_or_else(|| DType::ALL.to_vec());
        let mut cases = Vec::new();
        for shape in &shapes {
            if let Some(subs) = &filter.name_contains
                && !subs.iter().any(|sub| shape.name.contains(sub.as_str()))
            {
                continue;
            }
            for kernel in KernelKind::ALL.into_iter().filter(|k| kernels.contains(k) && k.applies_to(&shape.spec)) {
                for &dtype in DType::ALL.iter().filter(|d| dtypes.contains(d)) {
                    for backend in usable.iter().filter(|b| b.runs(kernel, dtype)) {
                        cases.push(Case { kernel, dtype, shape: shape.clone(), backend: backend.name.clone() });
                    }
                }
            }
        }
        if cases.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no case matches: shape set(s) {} with kernels {:?}, dtypes {:?}, backends {:?}, names {:?} \
                 (usable backends here: {})",
                sets.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
                kernels.iter().map(|k| k.name()).collect::<Vec<_>>(),
                dtypes.iter().map(|d| d.name()).collect::<Vec<_>>(),
                filter.backends.as_deref().unwrap_or(&[]),
                filter.name_contains.as_deref().unwrap_or(&[]),
                if usable.is_empty() {
                    "none".to_string()
                } else {
                    usable.iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ")
                }
            )));
        }
        Ok(Plan { sets: sets.to_vec(), cases, skipped_backends })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu_only() -> Vec<BackendStatus> {
        vec![
            BackendStatus::available("cpu"),
            BackendStatus { name: "cuda".into(), unavailable: Some("no NVIDIA driver".into()), supports: None },
        ]
    }

    #[test]
    fn the_default_plan_covers_every_kernel_and_dtype_on_the_cpu_and_skips_cuda_with_its_reason() {
        let plan = Plan::build(&[ShapeSet::Default], &PlanFilter::default(), &cpu_only()).unwrap();
        for k in KernelKind::ALL {
            for d in DType::ALL {
                assert!(plan.cases.iter().any(|c| c.kernel == k && c.dtype == d), "{k} {d} missing");
            }
        }
        assert!(plan.cases.iter().all(|c| c.backend == "cpu" && c.kernel.applies_to(&c.shape.spec)));
        assert_eq!(plan.skipped_backends.len(), 1);
        assert_eq!(plan.skipped_backends[0].name, "cuda");
        let ids: std::collections::HashSet<_> = plan.cases.iter().map(Case::id).collect();
        assert_eq!(ids.len(), plan.cases.len(), "case ids are unique");
    }

    #[test]
    fn filters_restrict_kernels_dtypes_and_names() {
        let filter = PlanFilter {
            kernels: Some(KernelKind::parse_list("dwconv").unwrap()),
            dtypes: Some(PlanFilter::parse_dtypes("bf16").unwrap()),
            name_contains: Some(vec!["56x56".into()]),
            ..Default::default()
        };
        let plan = Plan::build(&[ShapeSet::Default], &filter, &cpu_only()).unwrap();
        assert_eq!(plan.cases.len(), 3, "{:?}", plan.cases.iter().map(Case::id).collect::<Vec<_>>());
        assert!(plan.cases.iter().all(|c| c.dtype == DType::BF16 && c.shape.name.contains("56x56")));
        let kernels: Vec<_> = plan.cases.iter().map(|c| c.kernel).collect();
        assert_eq!(kernels, [KernelKind::Depthwise, KernelKind::Pointwise, KernelKind::DwsepFused]);
    }

    #[test]
    fn unknown_names_and_unavailable_backends_are_clear_errors() {
        let e = KernelKind::parse_list("gemm,conv3d").unwrap_err().to_string();
        assert!(e.contains("unknown kernel `conv3d`"), "{e}");
        assert!("huge".parse::<ShapeSet>().unwrap_err().to_string().contains("decoder-7b"));
        assert!(PlanFilter::parse_dtypes("f8").is_err());
        let f = PlanFilter { backends: Some(vec!["cuda".into()]), ..Default::default() };
        let e = Plan::build(&[ShapeSet::Quick], &f, &cpu_only()).unwrap_err().to_string();
        assert!(e.contains("not available here: no NVIDIA driver"), "{e}");
        let f = PlanFilter { backends: Some(vec!["tpu".into()]), ..Default::default() };
        assert!(Plan::build(&[ShapeSet::Quick], &f, &cpu_only()).unwrap_err().to_string().contains("unknown backend"));
        let f = PlanFilter { name_contains: Some(vec!["resnet".into()]), ..Default::default() };
        assert!(Plan::build(&[ShapeSet::Quick], &f, &cpu_only()).unwrap_err().to_string().contains("no case"));
    }

    #[test]
    fn a_gemm_only_backend_gets_gemm_cases_only() {
        let mut backends = vec![BackendStatus::available("cpu"), BackendStatus::available("blas")];
        backends[1].supports = Some(vec![(KernelKind::Gemm, DType::F16)]);
        let plan = Plan::build(&[ShapeSet::Quick], &PlanFilter::default(), &backends).unwrap();
        let blas: Vec<_> = plan.cases.iter().filter(|c| c.backend == "blas").collect();
        assert!(!blas.is_empty() && blas.iter().all(|c| c.kernel == KernelKind::Gemm && c.dtype == DType::F16));
        assert!(plan.cases.iter().any(|c| c.backend == "cpu" && c.kernel == KernelKind::Attention));
    }

    #[test]
    fn sets_are_merged_without_duplicate_shapes() {
        let one = Plan::build(&[ShapeSet::Default], &PlanFilter::default(), &cpu_only()).unwrap();
        let two = Plan::build(&[ShapeSet::Default, ShapeSet::Bert], &PlanFilter::default(), &cpu_only()).unwrap();
        let full = Plan::build(&[ShapeSet::Full], &PlanFilter::default(), &cpu_only()).unwrap();
        assert!(two.cases.len() > one.cases.len());
        assert!(full.cases.len() >= two.cases.len());
        for c in &one.cases {
            assert!(full.cases.iter().any(|f| f.id() == c.id()), "full contains default's {}", c.id());
        }
    }
}
