//! Launch plans for `cuda/dwconv.cu` (depthwise, fused depthwise + pointwise) and for the pointwise step, which runs
//! on `gemm.cu`'s kernels.
//!
//! Buffers: depthwise `[input, dw_weight, dw_out]`, pointwise `[dw_out, pw_weight, out]`, fused
//! `[input, dw_weight, pw_weight, out]`. No plan needs scratch memory.

use crate::{Arg, KernelInfo, LaunchPlan, OpPlan, blocks, dim, gemm};
use joule_core::{DType, DwConvShape, Error, Result};

const SOURCE: &str = "dwconv.cu";

/// The kernels of `dwconv.cu`.
pub const KERNELS: &[KernelInfo] = &[
    KernelInfo { name: "dwconv_dw_f32", source: SOURCE, dtype: DType::F32, tensor_cores: false, hot: false },
    KernelInfo { name: "dwconv_dw_f16", source: SOURCE, dtype: DType::F16, tensor_cores: false, hot: false },
    KernelInfo { name: "dwconv_dw_bf16", source: SOURCE, dtype: DType::BF16, tensor_cores: false, hot: false },
    KernelInfo { name: "dwconv_fused_f32", source: SOURCE, dtype: DType::F32, tensor_cores: false, hot: false },
    KernelInfo { name: "dwconv_fused_f16", source: SOURCE, dtype: DType::F16, tensor_cores: true, hot: false },
    KernelInfo { name: "dwconv_fused_bf16", source: SOURCE, dtype: DType::BF16, tensor_cores: true, hot: false },
];

/// Threads per block of the depthwise kernel.
const DW_THREADS: u32 = 256;
/// Output pixels per block of the fused kernels (`FM` in dwconv.cu).
pub const FUSED_PIXELS: usize = 64;
/// Output channels per tile of the fused kernels (`FN` in dwconv.cu).
pub const FUSED_OUT_CHANNELS: usize = 64;
/// Blocks the fused plan aims for before it splits the output channels across blocks (about two waves on a
/// 132-SM H100/H200); with fewer pixel tiles, output-channel tiles go to separate blocks.
const FUSED_TARGET_BLOCKS: usize = 264;
/// Largest grid y a launch may have.
const MAX_GRID_Y: usize = 65_535;

fn kernel(op: &str, dtype: DType) -> &'static str {
    KERNELS.iter().find(|k| k.dtype == dtype && k.name.starts_with(op)).map(|k| k.name).unwrap_or("missing-kernel")
}

/// The 15 geometry arguments every dwconv kernel takes, after checking that the kernels' 32-bit arithmetic holds:
/// every dimension, the padded extents, dw_channels and the output pixel count fit in an `int`.
fn geometry_args(s: &DwConvShape) -> Result<Vec<Arg>> {
    s.validate()?;
    let padded_h = s.height + s.pad_top + s.pad_bottom;
    let padded_w = s.width + s.pad_left + s.pad_right;
    dim(padded_h, "padded height")?;
    dim(padded_w, "padded width")?;
    dim(s.dw_channels(), "dw_channels")?;
    // The fused kernels index pixels up to one 64-pixel tile past the edge in 32-bit arithmetic.
    dim(s.out_pixels().saturating_add(FUSED_PIXELS), "output pixels")?;
    Ok(vec![
        Arg::I32(dim(s.batch, "batch")?),
        Arg::I32(dim(s.height, "height")?),
        Arg::I32(dim(s.width, "width")?),
        Arg::I32(dim(s.channels, "channels")?),
        Arg::I32(dim(s.kernel_h, "kernel_h")?),
        Arg::I32(dim(s.kernel_w, "kernel_w")?),
        Arg::I32(dim(s.stride_h, "stride_h")?),
        Arg::I32(dim(s.stride_w, "stride_w")?),
        Arg::I32(dim(s.pad_top, "pad_top")?),
        Arg::I32(dim(s.pad_left, "pad_left")?),
        Arg::I32(dim(s.dilation_h, "dilation_h")?),
        Arg::I32(dim(s.dilation_w, "dilation_w")?),
        Arg::I32(dim(s.multiplier, "multiplier")?),
        Arg::I32(dim(s.out_h(), "out_h")?),
        Arg::I32(dim(s.out_w(), "out_w")?),
    ])
}

/// The depthwise step: one `dwconv_dw_*` launch, one thread per group of 16 bytes of output channels per pixel.
pub fn depthwise_plan(shape: &DwConvShape, dtype: DType) -> Result<OpPlan> {
    let geometry = geometry_args(shape)?;
    let per_thread = 16 / dtype.size_bytes();
    let groups = shape.dw_channels().div_ceil(per_thread);
    let items = shape.out_pixels().saturating_mul(groups);
    dim(items, "depthwise work items (output pixels × channel groups)")?;
    let mut args = vec![Arg::Buf(0), Arg::Buf(1), Arg::Buf(2)];
    args.extend(geometry);
    Ok(OpPlan {
        launches: vec![LaunchPlan {
            kernel: kernel("dwconv_dw", dtype),
            source: SOURCE,
            grid: [blocks(items, DW_THREADS as usize)?, 1, 1],
            block: [DW_THREADS, 1, 1],
            smem_bytes: 0,
            args,
        }],
        scratch_bytes: Vec::new(),
    })
}

/// The pointwise step: the GEMM `[out_pixels, dw_channels] · [dw_channels, out_channels]` on `gemm.cu`'s kernels.
pub fn pointwise_plan(shape: &DwConvShape, dtype: DType) -> Result<OpPlan> {
    shape.validate()?;
    // No split K: the fused kernel must see the same k order per output to match this path bit for bit.
    let (launches, scratch_bytes) = gemm::launches(&shape.pointwise_gemm(), dtype, [0, 1, 2, 3], false)?;
    Ok(OpPlan { launches, scratch_bytes })
}

/// How the fused kernel splits its work (what [`fused_plan`] passes to `dwconv_fused_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedTiling {
    /// Depthwise channels per chunk held in shared memory (`KC`).
    pub chunk: usize,
    /// Chunks per output tile (`ceil(dw_channels / chunk)`); above 1 the depthwise tile is recomputed per chunk.
    pub chunks: usize,
    /// Output-channel tiles of 64 each block walks.
    pub tiles_per_block: usize,
    /// Threads per block.
    pub threads: u32,
    /// Dynamic shared memory, bytes.
    pub smem_bytes: u32,
    /// Grid.
    pub grid: [u32; 3],
}

/// The fused kernel's tiling for `shape` and `dtype`.
pub fn fused_tiling(shape: &DwConvShape, dtype: DType) -> Result<FusedTiling> {
    let dwc = shape.dw_channels();
    let (align, max_chunk, threads) = match dtype {
        // SIMT: shared = k-major depthwise tile [KC][64 + 4] + pointwise tile [KC][64], f32.
        DType::F32 => (16, 128, 256),
        // Tensor cores: depthwise tile [64][KC] + pointwise tile [KC][64], 16-bit; KC a multiple of 64 (swizzle).
        DType::F16 | DType::BF16 => (64, 256, 128),
    };
    let chunk = dwc.div_ceil(align).saturating_mul(align).min(max_chunk);
    let smem = match dtype {
        DType::F32 => chunk * (FUSED_PIXELS + 4 + FUSED_OUT_CHANNELS) * 4,
        DType::F16 | DType::BF16 => chunk * (FUSED_PIXELS + FUSED_OUT_CHANNELS) * 2,
    };
    let chunks = dwc.div_ceil(chunk);
    let m_blocks = shape.out_pixels().div_ceil(FUSED_PIXELS);
    let n_tiles = shape.out_channels.div_ceil(FUSED_OUT_CHANNELS);
    // With one chunk a block computes its depthwise tile once and reuses it for every output tile it walks, so keep
    // output tiles together unless that leaves the GPU with too few blocks.
    let tiles_per_block = if chunks > 1 {
        1
    } else {
        let want_y = FUSED_TARGET_BLOCKS.div_ceil(m_blocks.max(1)).clamp(1, n_tiles);
        n_tiles.div_ceil(want_y)
    };
    let grid_y = n_tiles.div_ceil(tiles_per_block);
    if grid_y > MAX_GRID_Y {
        return Err(Error::Unsupported(format!(
            "fused dwconv with {} output channels needs {grid_y} tiles; the CUDA kernel allows at most {MAX_GRID_Y}",
            shape.out_channels
        )));
    }
    Ok(FusedTiling {
        chunk,
        chunks,
        tiles_per_block,
        threads,
        smem_bytes: u32::try_from(smem).map_err(|_| Error::Unsupported("fused shared memory".into()))?,
        grid: [blocks(shape.out_pixels(), FUSED_PIXELS)?, grid_y as u32, 1],
    })
}

/// Depthwise and pointwise in one `dwconv_fused_*` launch; the depthwise output stays in shared memory.
pub fn fused_plan(shape: &DwConvShape, dtype: DType) -> Result<OpPlan> {
    let geometry = geometry_args(shape)?;
    let t = fused_tiling(shape, dtype)?;
    let mut args = vec![Arg::Buf(0), Arg::Buf(1), Arg::Buf(2), Arg::Buf(3)];
    args.extend(geometry);
    args.push(Arg::I32(dim(shape.out_channels, "out_channels")?));
    args.push(Arg::I32(dim(t.chunk, "chunk")?));
    args.push(Arg::I32(dim(t.tiles_per_block, "tiles per block")?));
    Ok(OpPlan {
        launches: vec![LaunchPlan {
            kernel: kernel("dwconv_fused", dtype),
            source: SOURCE,
            grid: t.grid,
            block: [t.threads, 1, 1],
            smem_bytes: t.smem_bytes,
            args,
        }],
        scratch_bytes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_exported_by_its_source() {
        let text = crate::source(SOURCE).unwrap();
        for k in KERNELS {
            // The depthwise kernels come from one macro (`JOULE_DW_KERNEL(T, name)`), the fused ones are written out.
            let exported = text.contains(&format!("JOULE_EXPORT({})", k.name));
            let from_macro = text.contains(&format!(", {})\n", k.name)) && text.contains("JOULE_EXPORT(name)");
            assert!(exported || from_macro, "{} not defined and exported", k.name);
        }
        let s = DwConvShape::new(1, 8, 8, 16, 3, 1, 8);
        for d in DType::ALL {
            for (p, op) in [(depthwise_plan(&s, d).unwrap(), "dwconv_dw"), (fused_plan(&s, d).unwrap(), "dwconv_fused")]
            {
                let name = p.launches[0].kernel;
                assert!(name.starts_with(op) && name.ends_with(d.name()), "{name}");
                assert!(KERNELS.iter().any(|k| k.name == name));
            }
        }
    }

    #[test]
    fn tiling_matches_the_constants_of_dwconv_cu() {
        let text = crate::source(SOURCE).unwrap();
        let c = |name| crate::gemm::tests::constant(text, name);
        assert_eq!((c("FM"), c("FN"), c("TC_THREADS"), c("S_THREADS")), (FUSED_PIXELS, FUSED_OUT_CHANNELS, 128, 256));
        assert!(text.contains("constexpr int S_THREADS = 256, S_TM = 4, S_TN = 4, S_AS = FM + 4;"));
        assert!(
            text.contains("pws = dyn_smem<T>(FM * KC * 2)") && text.contains("pws = dyn_smem<float>(KC * S_AS * 4)")
        );
        assert!(text.contains("__launch_bounds__(256) name("), "the depthwise kernels are launched with 256 threads");
        let s = DwConvShape::new(1, 8, 8, 100, 3, 1, 8);
        assert_eq!(fused_tiling(&s, DType::F32).unwrap().threads, 256);
        assert_eq!(fused_tiling(&s, DType::F16).unwrap().threads, 128);
        assert_eq!(depthwise_plan(&s, DType::F16).unwrap().launches[0].block[0], DW_THREADS);
    }

    #[test]
    fn depthwise_plan_args_and_grid() {
        let s = DwConvShape::new(2, 7, 9, 3, 3, 2, 5).with_dilation(2).with_same_padding().with_multiplier(3);
        let p = depthwise_plan(&s, DType::F16).unwrap();
        let l = &p.launches[0];
        // 2·4·5 pixels × ceil(9 / 8) groups = 80 items.
        assert_eq!((l.grid, l.block, l.smem_bytes), ([1, 1, 1], [256, 1, 1], 0));
        let ints: Vec<i32> = l.args[3..].iter().map(|a| if let Arg::I32(v) = a { *v } else { -1 }).collect();
        assert_eq!(ints, vec![2, 7, 9, 3, 3, 3, 2, 2, s.pad_top as i32, s.pad_left as i32, 2, 2, 3, 4, 5]);
        let big = DwConvShape::new(8, 112, 112, 96, 3, 1, 24);
        assert_eq!(
            depthwise_plan(&big, DType::F32).unwrap().launches[0].grid[0],
            (8 * 112 * 112 * 24_u32).div_ceil(256)
        );
    }

    #[test]
    fn pointwise_is_the_gemm() {
        let s = DwConvShape::new(1, 14, 14, 32, 3, 1, 40).with_multiplier(2);
        let p = pointwise_plan(&s, DType::BF16).unwrap();
        assert_eq!(p, gemm::plan(&s.pointwise_gemm(), DType::BF16).unwrap());
        assert_eq!(p.launches[0].kernel, "gemm_tc64_bf16");
        // A 7×7 image with 960 channels would be split as a plain GEMM, but never as the pointwise step.
        let s = DwConvShape::new(1, 7, 7, 960, 3, 1, 160);
        assert_eq!(gemm::plan(&s.pointwise_gemm(), DType::F16).unwrap().launches.len(), 2);
        let p = pointwise_plan(&s, DType::F16).unwrap();
        assert_eq!((p.launches.len(), p.launches[0].grid[2], p.scratch_bytes.len()), (1, 1, 0));
    }

    #[test]
    fn fused_tiling_chunks_and_reuse() {
        // dw_channels 144 fits one chunk: the depthwise tile is computed once per block.
        let s = DwConvShape::new(1, 56, 56, 144, 3, 1, 24);
        let t = fused_tiling(&s, DType::F16).unwrap();
        assert_eq!((t.chunk, t.chunks, t.tiles_per_block, t.grid), (192, 1, 1, [49, 1, 1]));
        // 960 channels: four chunks of 256; each block owns one 64-channel output tile.
        let s = DwConvShape::new(1, 7, 7, 960, 3, 1, 160);
        let t = fused_tiling(&s, DType::BF16).unwrap();
        assert_eq!((t.chunk, t.chunks, t.tiles_per_block, t.grid), (256, 4, 1, [1, 3, 1]));
        let t = fused_tiling(&s, DType::F32).unwrap();
        assert_eq!((t.chunk, t.chunks, t.grid), (128, 8, [1, 3, 1]));
        // Many pixel tiles and a single chunk: all output tiles in one block.
        let s = DwConvShape::new(8, 112, 112, 32, 3, 1, 256);
        let t = fused_tiling(&s, DType::F16).unwrap();
        assert_eq!((t.chunks, t.tiles_per_block, t.grid[1]), (1, 4, 1));
        for d in DType::ALL {
            for c in [1, 7, 64, 100, 1000, 5000] {
                let t = fused_tiling(&DwConvShape::new(1, 4, 4, c, 3, 1, 9), d).unwrap();
                assert!(t.smem_bytes <= 99 * 1024, "{d} {c}: {} bytes", t.smem_bytes);
                assert!(t.chunk * t.chunks >= c && t.chunk > 0);
            }
        }
    }

    #[test]
    fn invalid_and_too_large_shapes() {
        let bad = DwConvShape { stride_h: 0, ..DwConvShape::new(1, 4, 4, 4, 3, 1, 4) };
        assert!(matches!(depthwise_plan(&bad, DType::F32), Err(Error::InvalidShape { .. })));
        assert!(matches!(fused_plan(&bad, DType::F16), Err(Error::InvalidShape { .. })));
        assert!(matches!(pointwise_plan(&bad, DType::BF16), Err(Error::InvalidShape { .. })));
        let wide = DwConvShape::new(1, 1, 1 << 31, 1, 1, 1, 1);
        assert!(matches!(depthwise_plan(&wide, DType::F32), Err(Error::Unsupported(_))));
    }
}
