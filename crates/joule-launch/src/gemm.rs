//! Launch plans for `cuda/gemm.cu`: `C = alpha·A·B + beta·C`, buffers `[0 = A, 1 = B, 2 = C]`.
//!
//! f32 runs on CUDA cores (`gemm_simt_f32`, 128×64 block tiles), f16 and bf16 on tensor cores (`gemm_tc_*`,
//! 128×128 block tiles). Grid x walks the M tiles, grid y the N tiles. An empty output (M = 0 or N = 0) needs no
//! launch; K = 0 still launches, because C must become `beta·C`.

use crate::{Arg, KernelInfo, LaunchPlan, OpPlan, blocks, dim};
use joule_core::{DType, Error, GemmShape, Result};

const SOURCE: &str = "gemm.cu";

/// The kernels of `gemm.cu`.
pub const KERNELS: &[KernelInfo] = &[
    KernelInfo { name: "gemm_simt_f32", source: SOURCE, dtype: DType::F32, tensor_cores: false, hot: true },
    KernelInfo { name: "gemm_tc_f16", source: SOURCE, dtype: DType::F16, tensor_cores: true, hot: true },
    KernelInfo { name: "gemm_tc_bf16", source: SOURCE, dtype: DType::BF16, tensor_cores: true, hot: true },
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
    /// Threads per block.
    pub threads: u32,
    /// Dynamic shared memory per block, bytes.
    pub smem_bytes: u32,
}

/// The tiling used for `dtype`.
pub fn tiling(dtype: DType) -> GemmTiling {
    match dtype {
        // Two stages of a k-major 16×(128+4) A tile and a 16×64 B tile, f32.
        DType::F32 => GemmTiling {
            kernel: "gemm_simt_f32",
            block_m: 128,
            block_n: 64,
            threads: 256,
            smem_bytes: 2 * (16 * 132 + 16 * 64) * 4,
        },
        // Three stages of a 128×32 A tile and a 32×128 B tile, 16-bit.
        DType::F16 | DType::BF16 => GemmTiling {
            kernel: if dtype == DType::F16 { "gemm_tc_f16" } else { "gemm_tc_bf16" },
            block_m: 128,
            block_n: 128,
            threads: 256,
            smem_bytes: 3 * (128 * 32 + 32 * 128) * 2,
        },
    }
}

/// Largest grid y (N tiles) a launch may have.
const MAX_GRID_Y: u32 = 65_535;

/// The launch of one GEMM with explicit buffer indices for A, B and C (used by the pointwise convolution too).
pub(crate) fn launch(shape: &GemmShape, dtype: DType, bufs: [usize; 3]) -> Result<Option<LaunchPlan>> {
    shape.validate()?;
    if shape.m == 0 || shape.n == 0 {
        return Ok(None);
    }
    let t = tiling(dtype);
    // Row and column indices run up to one tile past the edge in 32-bit arithmetic.
    for (what, value, tile) in [("m", shape.m, t.block_m), ("n", shape.n, t.block_n), ("k", shape.k, 32)] {
        dim(value.saturating_add(tile), what)?;
    }
    let grid_y = blocks(shape.n, t.block_n)?;
    if grid_y > MAX_GRID_Y {
        return Err(Error::Unsupported(format!(
            "gemm with n = {} needs {grid_y} column tiles; the CUDA kernels allow at most {MAX_GRID_Y}",
            shape.n
        )));
    }
    Ok(Some(LaunchPlan {
        kernel: t.kernel,
        source: SOURCE,
        grid: [blocks(shape.m, t.block_m)?, grid_y, 1],
        block: [t.threads, 1, 1],
        smem_bytes: t.smem_bytes,
        args: vec![
            Arg::Buf(bufs[0]),
            Arg::Buf(bufs[1]),
            Arg::Buf(bufs[2]),
            Arg::I32(dim(shape.m, "m")?),
            Arg::I32(dim(shape.n, "n")?),
            Arg::I32(dim(shape.k, "k")?),
            Arg::I32(dim(shape.lda, "lda")?),
            Arg::I32(dim(shape.ldb, "ldb")?),
            Arg::I32(dim(shape.ldc, "ldc")?),
            Arg::F32(shape.alpha),
            Arg::F32(shape.beta),
        ],
    }))
}

/// The plan of one GEMM call: one launch (none when C is empty), no scratch.
///
/// The kernels assume each buffer starts 16-byte aligned (true of every device allocation); leading dimensions
/// that are not multiples of 8 are handled, more slowly, by element-wise loads.
pub fn plan(shape: &GemmShape, dtype: DType) -> Result<OpPlan> {
    Ok(OpPlan { launches: launch(shape, dtype, [0, 1, 2])?.into_iter().collect(), scratch_bytes: Vec::new() })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_exported_by_its_source() {
        let text = crate::source(SOURCE).unwrap();
        for k in KERNELS {
            assert!(text.contains(&format!("JOULE_EXPORT({})", k.name)), "{} not exported", k.name);
            assert!(text.contains(&format!("void __launch_bounds__(256)\n    {}(", k.name)), "{} not defined", k.name);
        }
        for d in DType::ALL {
            assert!(KERNELS.iter().any(|k| k.name == tiling(d).kernel && k.dtype == d));
        }
    }

    /// The integer after `name = ` in a `constexpr int` line of the source.
    pub(crate) fn constant(text: &str, name: &str) -> usize {
        let at =
            text.find(&format!(" {name} = ")).unwrap_or_else(|| panic!("{name} not in the source")) + name.len() + 4;
        text[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
    }

    #[test]
    fn tiling_matches_the_constants_of_gemm_cu() {
        let text = crate::source(SOURCE).unwrap();
        let c = |name| constant(text, name);
        assert!(text.contains("constexpr int SIMT_AS = SIMT_BM + 4;"));
        let simt = tiling(DType::F32);
        assert_eq!(
            (simt.block_m, simt.block_n, simt.threads as usize),
            (c("SIMT_BM"), c("SIMT_BN"), c("SIMT_THREADS"))
        );
        let stage = c("SIMT_BK") * (c("SIMT_BM") + 4) + c("SIMT_BK") * c("SIMT_BN");
        assert_eq!(simt.smem_bytes as usize, 2 * stage * 4);
        for d in [DType::F16, DType::BF16] {
            let tc = tiling(d);
            assert_eq!((tc.block_m, tc.block_n, tc.threads as usize), (c("TC_BM"), c("TC_BN"), c("TC_THREADS")));
            let stage = c("TC_BM") * c("TC_BK") + c("TC_BK") * c("TC_BN");
            assert_eq!(tc.smem_bytes as usize, c("TC_STAGES") * stage * 2);
        }
    }

    #[test]
    fn plan_covers_the_output_with_tiles() {
        let s = GemmShape::new(300, 129, 7).with_leading_dims(9, 130, 131).with_scalars(2.0, 0.5);
        let p = plan(&s, DType::F16).unwrap();
        assert_eq!(p.launches.len(), 1);
        let l = &p.launches[0];
        assert_eq!((l.kernel, l.grid, l.block), ("gemm_tc_f16", [3, 2, 1], [256, 1, 1]));
        assert_eq!(
            l.args,
            vec![
                Arg::Buf(0),
                Arg::Buf(1),
                Arg::Buf(2),
                Arg::I32(300),
                Arg::I32(129),
                Arg::I32(7),
                Arg::I32(9),
                Arg::I32(130),
                Arg::I32(131),
                Arg::F32(2.0),
                Arg::F32(0.5)
            ]
        );
        let l = &plan(&s, DType::F32).unwrap().launches[0];
        assert_eq!((l.kernel, l.grid), ("gemm_simt_f32", [3, 3, 1]));
        for d in DType::ALL {
            assert!(tiling(d).smem_bytes <= 48 * 1024, "{d}: stays under the default limit");
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
