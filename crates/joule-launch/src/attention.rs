//! Launch plans for `cuda/attention.cu`: scaled dot-product attention, forward.
//!
//! Buffers: `[0 = q, 1 = k, 2 = v, 3 = out]`, plus `4 = mask` when `shape.mask != MaskKind::None` (boolean: one `u8`
//! per element, additive: one `f32`, shaped `[batch, lq, lk]`), then the scratch buffers of a split-KV plan.
//!
//! Routing ([`variant`]):
//! - f16/bf16 with a head dim that is a multiple of 8 (≤ 256): FlashAttention-2 on tensor cores,
//!   `attention_fa2d{64,128,256}_{dtype}`, the template's padded head dim being the head dim rounded up to 64, 128 or
//!   256 (the loads beyond the head dim are predicated off; only `ceil16(head_dim)` columns are computed).
//! - f16/bf16 with a head dim that is not a multiple of 8 (e.g. 111): the 16-byte cp.async rows of the tensor-core
//!   kernel would be misaligned, so these go to the SIMT kernel `attention_simt_{dtype}`.
//! - f32: `attention_simt_f32` (tensor cores take 16-bit inputs only).
//!
//! Split-KV (flash-decoding, [`key_splits`]): when a FA2 launch would have fewer than [`SPLIT_TARGET_BLOCKS`] blocks
//! (decode with Lq = 1, few heads), the key tiles are cut into ranges run by separate blocks, which write f32 partial
//! results (unnormalised O, row max, row sum) to two scratch buffers; `attention_combine_{dtype}` then merges them.
//!
//! Head dims above 256 are [`Error::Unsupported`] on CUDA (the per-lane output accumulators are sized at compile time).

use crate::{Arg, KernelInfo, LaunchPlan, OpPlan, blocks, dim};
use joule_core::{AttnShape, DType, Error, MaskKind, Result};
use std::fmt;

const SOURCE: &str = "attention.cu";
/// Threads per block of every attention kernel (4 warps).
pub const THREADS: u32 = 128;
/// Query rows per block of the FlashAttention-2 kernels (16 per warp).
pub const FA2_ROWS: usize = 64;
/// Query rows per block of the SIMT kernels (4 per warp).
pub const SIMT_ROWS: usize = 16;
/// Keys per shared-memory tile of the SIMT kernels (one per lane).
pub const SIMT_KEYS: usize = 32;
/// The largest head dim the CUDA kernels take.
pub const MAX_HEAD_DIM: usize = 256;
/// Below this many blocks a FA2 launch splits its key range (about two blocks per SM on a 132-SM GPU).
pub const SPLIT_TARGET_BLOCKS: usize = 264;
/// The most key splits of one launch.
pub const MAX_SPLITS: usize = 16;

const fn info(name: &'static str, dtype: DType, tensor_cores: bool) -> KernelInfo {
    KernelInfo { name, source: SOURCE, dtype, tensor_cores, hot: true }
}

/// The kernels of `attention.cu`.
pub const KERNELS: &[KernelInfo] = &[
    info("attention_fa2d64_f16", DType::F16, true),
    info("attention_fa2d128_f16", DType::F16, true),
    info("attention_fa2d256_f16", DType::F16, true),
    info("attention_fa2d64_bf16", DType::BF16, true),
    info("attention_fa2d128_bf16", DType::BF16, true),
    info("attention_fa2d256_bf16", DType::BF16, true),
    info("attention_simt_f32", DType::F32, false),
    info("attention_simt_f16", DType::F16, false),
    info("attention_simt_bf16", DType::BF16, false),
    info("attention_combine_f16", DType::F16, false),
    info("attention_combine_bf16", DType::BF16, false),
];

/// Which attention kernel a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// FlashAttention-2 on tensor cores, templated on the padded head dim `padded_dim` (64, 128 or 256) with key
    /// tiles of `key_tile` keys.
    Fa2 {
        /// The kernel's compile-time head dim (the head dim rounded up to 64, 128 or 256).
        padded_dim: usize,
        /// Keys per shared-memory tile.
        key_tile: usize,
    },
    /// The SIMT kernel (f32, or a 16-bit head dim that is not a multiple of 8).
    Simt,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variant::Fa2 { padded_dim, key_tile } => {
                write!(f, "fa2 (head dim padded to {padded_dim}, {key_tile}-key tiles)")
            }
            Variant::Simt => f.write_str("simt"),
        }
    }
}

/// The kernel variant for a shape and precision (see the module documentation for the rules).
pub fn variant(shape: &AttnShape, dtype: DType) -> Result<Variant> {
    let d = shape.head_dim;
    if d > MAX_HEAD_DIM {
        return Err(Error::Unsupported(format!(
            "attention head_dim = {d} on CUDA (the kernels take head dims up to {MAX_HEAD_DIM})"
        )));
    }
    Ok(match dtype {
        DType::F16 | DType::BF16 if d.is_multiple_of(8) => {
            let padded_dim = if d <= 64 {
                64
            } else if d <= 128 {
                128
            } else {
                256
            };
            Variant::Fa2 { padded_dim, key_tile: if padded_dim == 256 { 32 } else { 64 } }
        }
        _ => Variant::Simt,
    })
}

/// The symbol of a variant at a precision.
pub fn kernel_name(variant: Variant, dtype: DType) -> &'static str {
    match (variant, dtype) {
        (Variant::Simt, DType::F32) => "attention_simt_f32",
        (Variant::Simt, DType::F16) => "attention_simt_f16",
        (Variant::Simt, DType::BF16) => "attention_simt_bf16",
        (Variant::Fa2 { padded_dim: 64, .. }, DType::BF16) => "attention_fa2d64_bf16",
        (Variant::Fa2 { padded_dim: 128, .. }, DType::BF16) => "attention_fa2d128_bf16",
        (Variant::Fa2 { .. }, DType::BF16) => "attention_fa2d256_bf16",
        (Variant::Fa2 { padded_dim: 64, .. }, _) => "attention_fa2d64_f16",
        (Variant::Fa2 { padded_dim: 128, .. }, _) => "attention_fa2d128_f16",
        (Variant::Fa2 { .. }, _) => "attention_fa2d256_f16",
    }
}

/// Dynamic shared memory of a variant, in bytes: the same layout as the kernel computes.
///
/// FA2: Q tile `64 × D` plus two stages of K and V tiles `Bc × D`, 16-bit elements. SIMT (f32 in shared memory):
/// Q `[16][d]`, K `[32][d | 1]`, V `[32][d]`, each region rounded up to 4 floats.
pub fn smem_bytes(variant: Variant, head_dim: usize) -> usize {
    match variant {
        Variant::Fa2 { padded_dim, key_tile } => 2 * (FA2_ROWS * padded_dim + 4 * key_tile * padded_dim),
        Variant::Simt => {
            let round4 = |x: usize| x.div_ceil(4) * 4;
            4 * (round4(SIMT_ROWS * head_dim) + round4(SIMT_KEYS * (head_dim | 1)) + round4(SIMT_KEYS * head_dim))
        }
    }
}

/// How many key ranges a FA2 launch splits into (1 = no split; always 1 for the SIMT kernels): enough to reach
/// [`SPLIT_TARGET_BLOCKS`] blocks, at most one per key tile and at most [`MAX_SPLITS`].
pub fn key_splits(shape: &AttnShape, variant: Variant) -> usize {
    let Variant::Fa2 { key_tile, .. } = variant else { return 1 };
    let blocks = shape.batch.saturating_mul(shape.heads).saturating_mul(shape.lq.div_ceil(FA2_ROWS)).max(1);
    if blocks >= SPLIT_TARGET_BLOCKS {
        return 1;
    }
    SPLIT_TARGET_BLOCKS.div_ceil(blocks).min(shape.lk.div_ceil(key_tile)).clamp(1, MAX_SPLITS)
}

/// The launch plan of one attention call: buffers `[q, k, v, out]` plus `[mask]` when `shape.mask` is not `None`.
///
/// One launch of one block per (batch·head, tile of query rows[, key split]), flattened into `grid.x`; with key
/// splits, a second launch (`attention_combine_*`, one thread per output element) merges the partial results kept
/// in two scratch buffers (f32 O `[splits, batch·heads·lq, head_dim]`, f32 (max, sum) `[splits, batch·heads·lq, 2]`).
/// `lq = 0` gives an empty plan (nothing to write); `lk = 0` still launches, and every row is written as exactly 0.
/// Kernel arguments: q, k, v, out, mask (buffer 0 stands in when there is no mask: the kernel never reads it then),
/// heads, lq, lk, head_dim, scale, causal (0/1), mask kind (0 none, 1 boolean, 2 additive); FA2 then takes the two
/// scratch buffers (buffer 0 stands in without splits) and the split count.
pub fn plan(shape: &AttnShape, dtype: DType) -> Result<OpPlan> {
    shape.validate()?;
    let var = variant(shape, dtype)?;
    if shape.lq == 0 {
        return Ok(OpPlan::default());
    }
    // The kernels compute `q0 + 64`, `i + lk − lq` and `lk + 63` in int: keep lq and lk clear of the limit.
    if shape.lq > i32::MAX as usize - 128 || shape.lk > i32::MAX as usize - 128 {
        return Err(Error::Unsupported("attention lq or lk within 128 of 2^31 − 1".into()));
    }
    let rows = match var {
        Variant::Fa2 { .. } => FA2_ROWS,
        Variant::Simt => SIMT_ROWS,
    };
    let bh = shape
        .batch
        .checked_mul(shape.heads)
        .ok_or(Error::SizeOverflow { kernel: "attention", what: "batch·heads" })?;
    let q_tiles = shape.lq.div_ceil(rows);
    let splits = key_splits(shape, var);
    let grid_x = bh
        .checked_mul(q_tiles)
        .and_then(|n| n.checked_mul(splits))
        .ok_or(Error::SizeOverflow { kernel: "attention", what: "grid" })
        .and_then(|n| blocks(n, 1))?;
    // gridDim.x is limited to 2^31 − 1, and the kernel computes blockIdx.x in int.
    if grid_x > i32::MAX as u32 {
        return Err(Error::Unsupported(format!("attention grid of {grid_x} blocks exceeds 2^31 − 1")));
    }
    let smem = u32::try_from(smem_bytes(var, shape.head_dim))
        .map_err(|_| Error::Unsupported("attention shared memory size".into()))?;
    let mask_kind = match shape.mask {
        MaskKind::None => 0,
        MaskKind::Boolean => 1,
        MaskKind::Additive => 2,
    };
    let mask_buf = if shape.mask == MaskKind::None { 0 } else { 4 };
    let own_buffers = if shape.mask == MaskKind::None { 4 } else { 5 };
    let mut args = vec![
        Arg::Buf(0),
        Arg::Buf(1),
        Arg::Buf(2),
        Arg::Buf(3),
        Arg::Buf(mask_buf),
        Arg::I32(dim(shape.heads, "heads")?),
        Arg::I32(dim(shape.lq, "lq")?),
        Arg::I32(dim(shape.lk, "lk")?),
        Arg::I32(dim(shape.head_dim, "head_dim")?),
        Arg::F32(shape.scale()),
        Arg::I32(i32::from(shape.causal)),
        Arg::I32(mask_kind),
    ];
    let mut launches = Vec::new();
    let mut scratch_bytes = Vec::new();
    if let Variant::Fa2 { .. } = var {
        let (part_o, part_ml) = if splits > 1 { (own_buffers, own_buffers + 1) } else { (0, 0) };
        args.extend([Arg::Buf(part_o), Arg::Buf(part_ml), Arg::I32(splits as i32)]);
        if splits > 1 {
            let too_big = || Error::SizeOverflow { kernel: "attention", what: "split-KV scratch" };
            let rows = bh.checked_mul(shape.lq).ok_or_else(too_big)?;
            let elems = rows.checked_mul(shape.head_dim).ok_or_else(too_big)?;
            scratch_bytes = vec![
                elems.checked_mul(4 * splits).ok_or_else(too_big)?,
                rows.checked_mul(8 * splits).ok_or_else(too_big)?,
            ];
            let combine_blocks = blocks(elems, THREADS as usize)?;
            if combine_blocks > i32::MAX as u32 {
                return Err(Error::Unsupported(format!("attention combine grid of {combine_blocks} blocks")));
            }
            launches.push(LaunchPlan {
                kernel: if dtype == DType::BF16 { "attention_combine_bf16" } else { "attention_combine_f16" },
                source: SOURCE,
                grid: [combine_blocks, 1, 1],
                block: [THREADS, 1, 1],
                smem_bytes: 0,
                args: vec![
                    Arg::Buf(part_o),
                    Arg::Buf(part_ml),
                    Arg::Buf(3),
                    Arg::I32(dim(rows, "batch·heads·lq")?),
                    Arg::I32(dim(shape.head_dim, "head_dim")?),
                    Arg::I32(splits as i32),
                ],
            });
        }
    }
    launches.insert(
        0,
        LaunchPlan {
            kernel: kernel_name(var, dtype),
            source: SOURCE,
            grid: [grid_x, 1, 1],
            block: [THREADS, 1, 1],
            smem_bytes: smem,
            args,
        },
    );
    Ok(OpPlan { launches, scratch_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_dtype_and_head_dim() {
        let s = |d| AttnShape::new(1, 1, 5, 7, d);
        let fa2 = |padded_dim, key_tile| Variant::Fa2 { padded_dim, key_tile };
        assert_eq!(variant(&s(40), DType::F16).unwrap(), fa2(64, 64));
        assert_eq!(variant(&s(64), DType::BF16).unwrap(), fa2(64, 64));
        assert_eq!(variant(&s(80), DType::F16).unwrap(), fa2(128, 64));
        assert_eq!(variant(&s(128), DType::F16).unwrap(), fa2(128, 64));
        assert_eq!(variant(&s(136), DType::BF16).unwrap(), fa2(256, 32));
        assert_eq!(variant(&s(256), DType::F16).unwrap(), fa2(256, 32));
        assert_eq!(variant(&s(111), DType::F16).unwrap(), Variant::Simt);
        assert_eq!(variant(&s(1), DType::BF16).unwrap(), Variant::Simt);
        assert_eq!(variant(&s(64), DType::F32).unwrap(), Variant::Simt);
        assert!(matches!(variant(&s(257), DType::F32), Err(Error::Unsupported(_))));
        assert!(matches!(plan(&s(264), DType::F16), Err(Error::Unsupported(_))));
        assert_eq!(kernel_name(fa2(128, 64), DType::BF16), "attention_fa2d128_bf16");
        assert_eq!(kernel_name(fa2(256, 32), DType::F16), "attention_fa2d256_f16");
        assert_eq!(kernel_name(Variant::Simt, DType::F16), "attention_simt_f16");
    }

    #[test]
    fn every_listed_kernel_is_defined_in_the_source_and_every_routed_name_is_listed() {
        let src = crate::source(SOURCE).unwrap();
        for k in KERNELS {
            // Entry points are generated by JOULE_ATTN_FA2(name, ...) / JOULE_ATTN_SIMT(name, ...).
            assert!(src.contains(&format!("({}, ", k.name)), "{} not defined in {SOURCE}", k.name);
            assert!(k.name.ends_with(k.dtype.name()), "{}", k.name);
            assert_eq!(k.tensor_cores, k.name.contains("fa2"), "{}", k.name);
        }
        for dtype in DType::ALL {
            for d in 1..=MAX_HEAD_DIM {
                let name = kernel_name(variant(&AttnShape::new(1, 1, 1, 1, d), dtype).unwrap(), dtype);
                let listed = KERNELS.iter().find(|k| k.name == name).unwrap_or_else(|| panic!("{name} not listed"));
                assert_eq!(listed.dtype, dtype);
            }
        }
    }

    #[test]
    fn plan_grid_args_and_shared_memory() {
        // Enough blocks: one launch, no split, dummy scratch arguments.
        let s = AttnShape::new(8, 32, 65, 129, 80).with_causal(true).with_mask(MaskKind::Additive).with_scale(0.3);
        let p = plan(&s, DType::BF16).unwrap();
        assert!(p.scratch_bytes.is_empty());
        let l = &p.launches[..];
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].kernel, "attention_fa2d128_bf16");
        assert_eq!(l[0].grid, [8 * 32 * 2, 1, 1]);
        assert_eq!(l[0].block, [128, 1, 1]);
        assert_eq!(l[0].smem_bytes, 2 * (64 * 128 + 4 * 64 * 128));
        assert_eq!(
            l[0].args,
            [
                Arg::Buf(0),
                Arg::Buf(1),
                Arg::Buf(2),
                Arg::Buf(3),
                Arg::Buf(4),
                Arg::I32(32),
                Arg::I32(65),
                Arg::I32(129),
                Arg::I32(80),
                Arg::F32(0.3),
                Arg::I32(1),
                Arg::I32(2),
                Arg::Buf(0),
                Arg::Buf(0),
                Arg::I32(1)
            ]
        );
        let s = AttnShape::new(1, 2, 33, 7, 59).with_mask(MaskKind::Boolean);
        let p = plan(&s, DType::F32).unwrap();
        let l = &p.launches[0];
        assert_eq!((l.kernel, l.grid), ("attention_simt_f32", [2 * 3, 1, 1]));
        assert_eq!(l.smem_bytes, 4 * (16 * 59 + 32 * 59 + 32 * 59));
        assert_eq!((l.args.len(), l.args[4], l.args[11]), (12, Arg::Buf(4), Arg::I32(1)));
        let p = plan(&AttnShape::new(1, 2, 33, 7, 64), DType::F32).unwrap();
        assert_eq!((p.launches[0].args[4], p.launches[0].args[11]), (Arg::Buf(0), Arg::I32(0)));
        assert_eq!(p.launches[0].smem_bytes, 4 * (16 * 64 + 32 * 65 + 32 * 64));
        // The default scale reaches the kernel.
        assert_eq!(p.launches[0].args[9], Arg::F32(0.125));
    }

    #[test]
    fn decode_shapes_split_the_keys_and_combine() {
        // Llama-style decode: 32 heads, one query, 2048 keys: 32 blocks alone would leave most SMs idle.
        let s = AttnShape::new(1, 32, 1, 2048, 128).with_causal(true);
        let splits = key_splits(&s, variant(&s, DType::F16).unwrap());
        assert_eq!(splits, 9);
        let p = plan(&s, DType::F16).unwrap();
        assert_eq!(p.scratch_bytes, [splits * 32 * 128 * 4, splits * 32 * 8]);
        let (main, combine) = (&p.launches[0], &p.launches[1]);
        assert_eq!((main.kernel, main.grid[0]), ("attention_fa2d128_f16", 32 * 9));
        assert_eq!(main.args[12..], [Arg::Buf(4), Arg::Buf(5), Arg::I32(9)]);
        assert_eq!(combine.kernel, "attention_combine_f16");
        assert_eq!(combine.grid, [32 * 128 / 128, 1, 1]);
        assert_eq!(combine.args, [Arg::Buf(4), Arg::Buf(5), Arg::Buf(3), Arg::I32(32), Arg::I32(128), Arg::I32(9)]);
        // With a mask the scratch buffers move up by one; never more splits than key tiles, nor than MAX_SPLITS.
        let s = AttnShape::new(1, 1, 3, 200, 136).with_mask(MaskKind::Boolean);
        let p = plan(&s, DType::BF16).unwrap();
        assert_eq!(key_splits(&s, variant(&s, DType::BF16).unwrap()), 7, "200 keys in 32-key tiles");
        assert_eq!(p.launches[0].args[12..], [Arg::Buf(5), Arg::Buf(6), Arg::I32(7)]);
        assert_eq!(p.launches[1].kernel, "attention_combine_bf16");
        let s = AttnShape::new(1, 1, 1, 100_000, 64);
        assert_eq!(key_splits(&s, variant(&s, DType::F16).unwrap()), MAX_SPLITS);
        // One key tile, or the SIMT kernels: no split.
        let s = AttnShape::new(1, 1, 1, 64, 64);
        assert_eq!(
            (key_splits(&s, variant(&s, DType::F16).unwrap()), plan(&s, DType::F16).unwrap().launches.len()),
            (1, 1)
        );
        let s = AttnShape::new(1, 1, 1, 2048, 64);
        assert_eq!(plan(&s, DType::F32).unwrap().launches.len(), 1);
    }

    #[test]
    fn degenerate_and_invalid_shapes() {
        assert_eq!(plan(&AttnShape::new(1, 1, 0, 5, 16), DType::F16).unwrap(), OpPlan::default());
        let p = plan(&AttnShape::new(1, 1, 5, 0, 16), DType::F16).unwrap();
        assert_eq!(p.launches.len(), 1, "lk = 0 still writes the zero rows");
        assert!(matches!(plan(&AttnShape::new(1, 0, 5, 5, 16), DType::F16), Err(Error::InvalidShape { .. })));
        assert!(matches!(plan(&AttnShape::new(1, 1, 5, 5, 0), DType::F32), Err(Error::InvalidShape { .. })));
        let huge = AttnShape::new(1, 1, 1 << 31, 1, 8);
        assert!(plan(&huge, DType::F16).is_err());
    }

    #[test]
    fn smem_fits_the_sm80_opt_in_limit() {
        for dtype in DType::ALL {
            for d in 1..=MAX_HEAD_DIM {
                let v = variant(&AttnShape::new(1, 1, 1, 1, d), dtype).unwrap();
                assert!(smem_bytes(v, d) <= 163 * 1024, "{dtype:?} d = {d}: {} bytes", smem_bytes(v, d));
            }
        }
    }
}
