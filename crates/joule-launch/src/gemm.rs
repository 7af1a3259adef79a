//! Launch plans for `cuda/gemm.cu`: `C = alpha·A·B + beta·C`, buffers `[0 = A, 1 = B, 2 = C]`, scratch `[3 = split-K
//! workspace]` when the plan splits K.
//!
//! f32 runs on CUDA cores (`gemm_simt*_f32`), f16 and bf16 on tensor cores (`gemm_tc*_{f16,bf16}`). Grid x walks the
//! M tiles, grid y the N tiles, grid z the K splits. The strategy is chosen in one place, [`strategy`]: large tiles
//! (128×128 on tensor cores, 128×64 on CUDA cores) when they alone give at least one block per SM of a large GPU,
//! else 64×64 tiles; and when even those leave the GPU short of blocks and K is long, K is split across blocks into
//! an f32 workspace that `gemm_splitk_reduce_*` sums (in split order) and rounds once. An empty output (M = 0 or
//! N = 0) needs no launch; K = 0 still launches, because C must become `beta·C`.

use crate::{Arg, KernelInfo, LaunchPlan, OpPlan, blocks, dim};
use joule_core::{DType, Error, GemmShape, Result};

const SOURCE: &str = "gemm.cu";

/// The kernels of `gemm.cu`.
pub const KERNELS: &[KernelInfo] = &[
    KernelInfo { name: "gemm_simt_f32", source: SOURCE, dtype: DType::F32, tensor_cores: false, hot: true },
    KernelInfo { name: "gemm_simt64_f32", source: SOURCE, dtype: DType::F32, tensor_cores: false, hot: true },
    KernelInfo { name: "gemm_tc_f16", source: SOURCE, dtype: DType::F16, tensor_cores: true, hot: true },
    KernelInfo { name: "gemm_tc_bf16", source: SOURCE, dtype: DType::BF16, tensor_cores: true, hot: true },
    KernelInfo { name: "gemm_tc64_f16", source: SOURCE, dtype: DType::F16, tensor_cores: true, hot: true },
    KernelInfo { name: "gemm_tc64_bf16", source: SOURCE, dtype: DType::BF16, tensor_cores: true, hot: true },
    KernelInfo { name: "gemm_splitk_reduce_f32", source: SOURCE, dtype: DType::F32, tensor_cores: false, hot: false },
    KernelInfo { name: "gemm_splitk_reduce_f16", source: SOURCE, dtype: DType::F16, tensor_cores: false, hot: false },
    KernelInfo { name: "gemm_splitk_reduce_bf16", source: SOURCE, dtype: DType::BF16, tensor_cores: false, hot: false },
];

/// Block tile and resources of one GEMM kernel (must match the constants in `gemm.cu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmTiling {
    /// Kernel symbol.
    pub kernel: &'static str,
    /// Rows of C per block.
    pub block_m: usize,
    /// Columns of C per block.
    pub block_n: usize,
    /// Depth of one pipeline stage (k per tile).
    pub block_k: usize,
    /// Threads per block.
    pub threads: u32,
    /// Dynamic shared memory per block, bytes.
    pub smem_bytes: u32,
}

/// The tiling of the large (`small = false`) or 64×64 (`small = true`) kernel for `dtype`.
pub fn tiling(dtype: DType, small: bool) -> GemmTiling {
    let (bm, bn) = if small { (64, 64) } else { (128, if dtype == DType::F32 { 64 } else { 128 }) };
    match (dtype, small) {
        // Two stages of a k-major 16×(BM+4) A tile and a 16×BN B tile, f32.
        (DType::F32, _) => GemmTiling {
            kernel: if small { "gemm_simt64_f32" } else { "gemm_simt_f32" },
            block_m: bm,
            block_n: bn,
            block_k: 16,
            threads: 256,
            smem_bytes: (2 * (16 * (bm + 4) + 16 * bn) * 4) as u32,
        },
        // Three stages of a BM×32 A tile and a 32×BN B tile, 16-bit; 2×(BN/32) warps.
        (DType::F16 | DType::BF16, _) => GemmTiling {
            kernel: match (dtype, small) {
                (DType::F16, false) => "gemm_tc_f16",
                (DType::F16, true) => "gemm_tc64_f16",
                (_, false) => "gemm_tc_bf16",
                (_, true) => "gemm_tc64_bf16",
            },
            block_m: bm,
            block_n: bn,
            block_k: 32,
            threads: (64 * bn / 32) as u32,
            smem_bytes: (3 * (bm * 32 + 32 * bn) * 2) as u32,
        },
    }
}

/// How one GEMM call is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmStrategy {
    /// The main kernel's tiling.
    pub tiling: GemmTiling,
    /// K splits (grid z); 1 = no split, no workspace, no reduce launch.
    pub splits: usize,
    /// k per split (a multiple of `tiling.block_k` when split; K itself otherwise).
    pub k_split: usize,
}

/// Streaming multiprocessors of the largest GPUs the plans aim to fill (H100/H200 SXM: 132).
const TARGET_SMS: usize = 132;
/// Blocks a split tries to reach: two per SM.
const TARGET_BLOCKS: usize = 2 * TARGET_SMS;
/// Each split keeps at least this much of K, so the partial sums pay for their workspace traffic.
const MIN_K_PER_SPLIT: usize = 256;
/// At most this many splits.
const MAX_SPLITS: usize = 8;

/// The strategy for `shape` and `dtype` (`allow_split = false` keeps one k order per output, as the fused
/// depthwise-separable kernel needs to match the pointwise GEMM bit for bit).
pub fn strategy(shape: &GemmShape, dtype: DType, allow_split: bool) -> GemmStrategy {
    let tiles = |t: &GemmTiling| shape.m.div_ceil(t.block_m).saturating_mul(shape.n.div_ceil(t.block_n));
    let large = tiling(dtype, false);
    let tiling = if tiles(&large) >= TARGET_SMS { large } else { tiling(dtype, true) };
    let count = tiles(&tiling).max(1);
    let want = TARGET_BLOCKS.div_ceil(count).min(shape.k / MIN_K_PER_SPLIT).min(MAX_SPLITS);
    if !allow_split || count >= TARGET_SMS || want < 2 {
        return GemmStrategy { tiling, splits: 1, k_split: shape.k };
    }
    let k_split = shape.k.div_ceil(want).div_ceil(tiling.block_k) * tiling.block_k;
    GemmStrategy { tiling, splits: shape.k.div_ceil(k_split), k_split }
}

/// Largest grid y or z a launch may have.
const MAX_GRID_YZ: u32 = 65_535;
/// Blocks of the split-K reduce launch at most (it loops over the rest).
const MAX_REDUCE_BLOCKS: usize = 8 * TARGET_BLOCKS;

/// The launches of one GEMM with buffer indices `[A, B, C, workspace]` (the workspace is used only when split).
pub(crate) fn launches(
    shape: &GemmShape,
    dtype: DType,
    bufs: [usize; 4],
    allow_split: bool,
) -> Result<(Vec<LaunchPlan>, Vec<usize>)> {
    shape.validate()?;
    if shape.m == 0 || shape.n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let st = strategy(shape, dtype, allow_split);
    let t = st.tiling;
    // Row, column and k indices run up to one tile past the edge in 32-bit arithmetic.
    for (what, value, tile) in [("m", shape.m, t.block_m), ("n", shape.n, t.block_n), ("k", shape.k, t.block_k)] {
        dim(value.saturating_add(tile), what)?;
    }
    let grid_y = blocks(shape.n, t.block_n)?;
    if grid_y > MAX_GRID_YZ {
        return Err(Error::Unsupported(format!(
            "gemm with n = {} needs {grid_y} column tiles; the CUDA kernels allow at most {MAX_GRID_YZ}",
            shape.n
        )));
    }
    let split = st.splits > 1;
    let (m, n, ldc) = (dim(shape.m, "m")?, dim(shape.n, "n")?, dim(shape.ldc, "ldc")?);
    let mut plan = vec![LaunchPlan {
        kernel: t.kernel,
        source: SOURCE,
        grid: [blocks(shape.m, t.block_m)?, grid_y, st.splits as u32],
        block: [t.threads, 1, 1],
        smem_bytes: t.smem_bytes,
        args: vec![
            Arg::Buf(bufs[0]),
            Arg::Buf(bufs[1]),
            Arg::Buf(bufs[2]),
            Arg::Buf(if split { bufs[3] } else { bufs[2] }),
            Arg::I32(m),
            Arg::I32(n),
            Arg::I32(dim(shape.k, "k")?),
            Arg::I32(dim(shape.lda, "lda")?),
            Arg::I32(dim(shape.ldb, "ldb")?),
            Arg::I32(ldc),
            Arg::F32(shape.alpha),
            Arg::F32(shape.beta),
            Arg::I32(dim(st.k_split, "k per split")?),
        ],
    }];
    if !split {
        return Ok((plan, Vec::new()));
    }
    let outputs = shape.m * shape.n; // < 2^31 · 128 · 8: the split is only chosen for fewer than 132 tiles
    plan.push(LaunchPlan {
        kernel: match dtype {
            DType::F32 => "gemm_splitk_reduce_f32",
            DType::F16 => "gemm_splitk_reduce_f16",
            DType::BF16 => "gemm_splitk_reduce_bf16",
        },
        source: SOURCE,
        grid: [blocks(outputs, 256)?.min(MAX_REDUCE_BLOCKS as u32), 1, 1],
        block: [256, 1, 1],
        smem_bytes: 0,
        args: vec![
            Arg::Buf(bufs[3]),
            Arg::Buf(bufs[2]),
            Arg::I32(m),
            Arg::I32(n),
            Arg::I32(ldc),
            Arg::I32(st.splits as i32),
            Arg::F32(shape.alpha),
            Arg::F32(shape.beta),
        ],
    });
    Ok((plan, vec![st.splits * outputs * 4]))
}

/// The plan of one GEMM call (see the module docs); scratch `[workspace]` when K is split.
///
/// The kernels assume each buffer starts 16-byte aligned (true of every device allocation); leading dimensions
/// that are not multiples of 8 are handled, more slowly, by element-wise loads.
pub fn plan(shape: &GemmShape, dtype: DType) -> Result<OpPlan> {
    let (launches, scratch_bytes) = launches(shape, dtype, [0, 1, 2, 3], true)?;
    Ok(OpPlan { launches, scratch_bytes })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn ints(args: &[Arg]) -> Vec<i64> {
        args.iter()
            .map(|a| match a {
                Arg::Buf(i) => 1000 + *i as i64,
                Arg::I32(v) => *v as i64,
                Arg::F32(v) => (*v * 100.0) as i64,
            })
            .collect()
    }

    #[test]
    fn every_kernel_is_defined_and_exported_by_its_source() {
        let text = crate::source(SOURCE).unwrap();
        for k in KERNELS {
            let exported = text.contains(&format!("JOULE_EXPORT({})", k.name));
            let from_macro = text.contains(&format!(", {})\n", k.name)) && text.contains("JOULE_EXPORT(name)");
            assert!(exported || from_macro, "{} not defined and exported", k.name);
        }
        for d in DType::ALL {
            for small in [false, true] {
                let t = tiling(d, small);
                assert!(KERNELS.iter().any(|k| k.name == t.kernel && k.dtype == d && k.hot));
            }
        }
    }

    /// The integer after `name = ` in a `constexpr int` line of the source.
    pub(crate) fn constant(text: &str, name: &str) -> usize {
        let at =
            text.find(&format!(" {name} = ")).unwrap_or_else(|| panic!("{name} not in the source")) + name.len() + 4;
        text[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
    }

    #[test]
    fn tilings_match_the_kernels_in_gemm_cu() {
        let text = crate::source(SOURCE).unwrap();
        let c = |name| constant(text, name);
        for d in DType::ALL {
            for small in [false, true] {
                let t = tiling(d, small);
                let header = format!("__launch_bounds__({}) {}(JOULE_GEMM_PARAMS", t.threads, t.kernel);
                let at = text.find(&header).unwrap_or_else(|| panic!("{header}"));
                let body = &text[at..at + 200];
                if d == DType::F32 {
                    assert!(body.contains(&format!("gemm_simt<{}, {}, ", t.block_m, t.block_n)), "{body}");
                    assert_eq!((t.block_k, t.threads as usize), (c("SIMT_BK"), c("SIMT_THREADS")));
                    let stage = c("SIMT_BK") * (t.block_m + 4) + c("SIMT_BK") * t.block_n;
                    assert_eq!(t.smem_bytes as usize, 2 * stage * 4);
                } else {
                    assert!(
                        body.contains(&format!(
                            "gemm_tc<{}, {}, {}>",
                            ["float", "f16", "bf16"][d as usize],
                            t.block_m,
                            t.block_n
                        )),
                        "{body}"
                    );
                    assert_eq!(t.threads as usize, 32 * 2 * t.block_n / 32);
                    assert_eq!(t.block_k, c("TC_BK"));
                    assert_eq!(t.smem_bytes as usize, c("TC_STAGES") * (t.block_m + t.block_n) * t.block_k * 2);
                }
                assert!(t.smem_bytes <= 48 * 1024, "{}: stays under the default limit", t.kernel);
            }
        }
    }

    #[test]
    fn small_problems_get_small_tiles_and_large_ones_large_tiles() {
        let s = GemmShape::new(300, 129, 7).with_leading_dims(9, 130, 131).with_scalars(2.0, 0.5);
        let p = plan(&s, DType::F16).unwrap();
        assert_eq!((p.launches.len(), p.scratch_bytes.len()), (1, 0));
        let l = &p.launches[0];
        assert_eq!((l.kernel, l.grid, l.block), ("gemm_tc64_f16", [5, 3, 1], [128, 1, 1]));
        assert_eq!(ints(&l.args), vec![1000, 1001, 1002, 1002, 300, 129, 7, 9, 130, 131, 200, 50, 7]);
        let l = &plan(&s, DType::F32).unwrap().launches[0];
        assert_eq!((l.kernel, l.grid, l.block), ("gemm_simt64_f32", [5, 3, 1], [256, 1, 1]));
        let big = GemmShape::new(4096, 4096, 4096);
        let l = &plan(&big, DType::BF16).unwrap().launches[0];
        assert_eq!((l.kernel, l.grid, l.block), ("gemm_tc_bf16", [32, 32, 1], [256, 1, 1]));
        let l = &plan(&big, DType::F32).unwrap().launches[0];
        assert_eq!((l.kernel, l.grid), ("gemm_simt_f32", [32, 64, 1]));
    }

    #[test]
    fn long_k_with_few_tiles_is_split_and_reduced() {
        // BERT-base FFN down-projection, 128 tokens: 2×12 tiles of 64×64 → 8 splits of 384.
        let s = GemmShape::new(128, 768, 3072).with_scalars(1.0, 0.5);
        let st = strategy(&s, DType::F16, true);
        assert_eq!((st.tiling.kernel, st.splits, st.k_split), ("gemm_tc64_f16", 8, 384));
        let p = plan(&s, DType::F16).unwrap();
        assert_eq!(p.scratch_bytes, vec![8 * 128 * 768 * 4]);
        assert_eq!(p.launches.len(), 2);
        assert_eq!(p.launches[0].grid, [2, 12, 8]);
        assert_eq!(p.launches[0].args[3], Arg::Buf(3));
        assert_eq!(p.launches[0].args[12], Arg::I32(384));
        let r = &p.launches[1];
        assert_eq!(r.kernel, "gemm_splitk_reduce_f16");
        assert_eq!(ints(&r.args), vec![1003, 1002, 128, 768, 768, 8, 100, 50]);
        // The pointwise convolution must keep one k order per output: never split.
        let (l, scratch) = launches(&s, DType::F16, [0, 1, 2, 3], false).unwrap();
        assert_eq!((l.len(), l[0].grid[2], scratch.len()), (1, 1, 0));
        for (m, n, k) in [(1, 1, 100_000), (64, 64, 513), (127, 33, 4097), (128, 128, 65_536), (300, 300, 1000)] {
            for d in DType::ALL {
                let st = strategy(&GemmShape::new(m, n, k), d, true);
                assert!(st.splits <= MAX_SPLITS && st.k_split * st.splits >= k, "{m}×{n}×{k}: {st:?}");
                if st.splits > 1 {
                    assert!(st.k_split.is_multiple_of(st.tiling.block_k) && st.k_split >= MIN_K_PER_SPLIT);
                    assert!((st.splits - 1) * st.k_split < k, "no empty split: {st:?}");
                }
            }
        }
    }

    #[test]
    fn degenerate_and_invalid_shapes() {
        assert!(plan(&GemmShape::new(0, 5, 5), DType::F32).unwrap().launches.is_empty());
        assert!(plan(&GemmShape::new(5, 0, 5), DType::BF16).unwrap().launches.is_empty());
        // K = 0 must still write beta·C.
        assert_eq!(plan(&GemmShape::new(1, 1, 0), DType::F16).unwrap().launches[0].grid, [1, 1, 1]);
        assert!(matches!(
            plan(&GemmShape::new(2, 2, 2).with_leading_dims(1, 2, 2), DType::F32),
            Err(Error::InvalidShape { .. })
        ));
        let wide = GemmShape::new(1, 128 * 65_536, 1);
        assert!(matches!(plan(&wide, DType::F16), Err(Error::Unsupported(_))));
        let near_limit = GemmShape::new(i32::MAX as usize - 5, 1, 1);
        assert!(matches!(plan(&near_limit, DType::F32), Err(Error::Unsupported(_))));
        let huge_k = GemmShape::new(1, 1, 1 << 31);
        assert!(matches!(plan(&huge_k, DType::F32), Err(Error::Unsupported(_))));
    }
}
