//! The emulator's own primitives against expectations written out independently here: the PTX ISA's fragment
//! layouts for mma.m16n8k16 and ldmatrix (so a layout mistake in the emulator cannot hide one in a kernel), the
//! shuffle and vote rules, barriers and thread geometry, cp.async group ordering, access checks, invalid programs
//! and launches, and the f16/bf16 conversions bit for bit against the `half` crate.

// Index loops spell out the PTX formulas (lane, register, element) as the ISA writes them.
#![allow(clippy::needless_range_loop)]

use half::{bf16, f16};
use joule_core::Error;
use joule_emu::{EmuBuffer, convert, launch};
use joule_launch::Arg;

fn err_text(r: joule_core::Result<()>) -> String {
    match r {
        Err(Error::Cuda { message, .. }) => message,
        other => panic!("expected an emulated-launch error, got {other:?}"),
    }
}

/// A small deterministic generator (the tests need no statistics, only varied values).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    /// A small integer in [-8, 8) divided by 4: exact in f16 and bf16, and every product and 16-term sum is exact
    /// in f32, so emulated results must match the plain product exactly.
    fn small(&mut self) -> f32 {
        (self.next() % 16) as f32 / 4.0 - 2.0
    }
}

// ---- mma.m16n8k16: fragments built from the PTX ISA's formulas ("Matrix Fragments for mma.m16n8k16 with floating
// point type"), groupID = lane >> 2, threadID_in_group = lane % 4. ----

/// Row and column of A element a_i (i = 0..8) held by `lane`.
fn ptx_a_elem(lane: usize, i: usize) -> (usize, usize) {
    let (group, tig) = (lane >> 2, lane % 4);
    let row = if matches!(i, 0 | 1 | 4 | 5) { group } else { group + 8 };
    let col = if i < 4 { tig * 2 + (i & 1) } else { tig * 2 + (i & 1) + 8 };
    (row, col)
}
/// Row (k) and column (n) of B element b_i (i = 0..4) held by `lane`.
fn ptx_b_elem(lane: usize, i: usize) -> (usize, usize) {
    let (group, tig) = (lane >> 2, lane % 4);
    let row = if i < 2 { tig * 2 + (i & 1) } else { tig * 2 + (i & 1) + 8 };
    (row, group)
}
/// Row and column of C/D element c_i (i = 0..4) held by `lane`.
fn ptx_c_elem(lane: usize, i: usize) -> (usize, usize) {
    let (group, tig) = (lane >> 2, lane % 4);
    let row = if i < 2 { group } else { group + 8 };
    (row, tig * 2 + (i & 1))
}

fn mma_case(kernel: &str, to_bits: fn(f32) -> u16, seed: u64) {
    let mut rng = Lcg(seed);
    const CASES: usize = 3;
    let mut frags = vec![0u32; CASES * 32 * 10];
    let mut expected = vec![0f32; CASES * 32 * 4];
    for case in 0..CASES {
        let a: Vec<Vec<f32>> = (0..16).map(|_| (0..16).map(|_| rng.small()).collect()).collect();
        let b: Vec<Vec<f32>> = (0..16).map(|_| (0..8).map(|_| rng.small()).collect()).collect();
        let c: Vec<Vec<f32>> = (0..16).map(|_| (0..8).map(|_| rng.small() * 3.0).collect()).collect();
        for lane in 0..32 {
            let f = &mut frags[(case * 32 + lane) * 10..][..10];
            for reg in 0..4 {
                let (r0, c0) = ptx_a_elem(lane, 2 * reg);
                let (r1, c1) = ptx_a_elem(lane, 2 * reg + 1);
                f[reg] = to_bits(a[r0][c0]) as u32 | (to_bits(a[r1][c1]) as u32) << 16;
            }
            for reg in 0..2 {
                let (k0, n0) = ptx_b_elem(lane, 2 * reg);
                let (k1, n1) = ptx_b_elem(lane, 2 * reg + 1);
                f[4 + reg] = to_bits(b[k0][n0]) as u32 | (to_bits(b[k1][n1]) as u32) << 16;
            }
            for i in 0..4 {
                let (r, col) = ptx_c_elem(lane, i);
                f[6 + i] = c[r][col].to_bits();
                let d: f64 = c[r][col] as f64 + (0..16).map(|k| a[r][k] as f64 * b[k][col] as f64).sum::<f64>();
                expected[(case * 32 + lane) * 4 + i] = d as f32;
            }
        }
    }
    let mut bufs =
        [EmuBuffer::from_slice("frags", &frags).unwrap(), EmuBuffer::zeroed("out", CASES * 32 * 16).unwrap()];
    launch(kernel, [CASES as u32, 1, 1], [32, 1, 1], 0, &[Arg::Buf(0), Arg::Buf(1)], &mut bufs).unwrap();
    let got: Vec<f32> = bufs[1].to_vec().unwrap();
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "{kernel}: case {} lane {} c{}", i / 128, (i / 4) % 32, i % 4);
    }
}

#[test]
fn mma_f16_matches_a_plain_product_with_ptx_fragment_layouts() {
    mma_case("emutest_mma_f16", |x| f16::from_f32(x).to_bits(), 1);
}

#[test]
fn mma_bf16_matches_a_plain_product_with_ptx_fragment_layouts() {
    mma_case("emutest_mma_bf16", |x| bf16::from_f32(x).to_bits(), 2);
}

/// The usual kernel pattern (ldmatrix_x4 for row-major A, ldmatrix_x2_trans for row-major k×n B, one mma) computes
/// the plain product.
fn mma_tile_case<T: bytemuck::Pod>(kernel: &str, from: fn(f32) -> T, seed: u64) {
    let mut rng = Lcg(seed);
    let a: Vec<f32> = (0..256).map(|_| rng.small()).collect();
    let b: Vec<f32> = (0..128).map(|_| rng.small()).collect();
    let at: Vec<T> = a.iter().map(|&x| from(x)).collect();
    let bt: Vec<T> = b.iter().map(|&x| from(x)).collect();
    let mut bufs = [
        EmuBuffer::from_slice("a", &at).unwrap(),
        EmuBuffer::from_slice("b", &bt).unwrap(),
        EmuBuffer::poisoned("c", 128 * 4).unwrap(),
    ];
    let smem = (256 + 128) * 2;
    launch(kernel, [1, 1, 1], [32, 1, 1], smem, &[Arg::Buf(0), Arg::Buf(1), Arg::Buf(2)], &mut bufs).unwrap();
    let c: Vec<f32> = bufs[2].to_vec().unwrap();
    for i in 0..16 {
        for j in 0..8 {
            let e: f32 = (0..16).map(|k| a[i * 16 + k] * b[k * 8 + j]).sum();
            assert_eq!(c[i * 8 + j], e, "{kernel} C[{i}][{j}]");
        }
    }
}

#[test]
fn ldmatrix_and_mma_compute_a_16x8x16_tile_as_kernels_use_them() {
    mma_tile_case("emutest_mma_tile_f16", f16::from_f32, 3);
    mma_tile_case("emutest_mma_tile_bf16", bf16::from_f32, 4);
}

// ---- ldmatrix: lanes 8m..8m+7 give the rows of matrix m; lane l receives row l/4, elements 2(l%4), 2(l%4)+1
// (the .trans forms: elements (2(l%4), l/4) and (2(l%4)+1, l/4)). ----

#[test]
fn ldmatrix_delivers_the_ptx_fragments_for_every_form() {
    // Four 8×8 matrices of 16-bit elements in shared memory, rows 24 elements (48 bytes) apart, matrix m starting at
    // element 200·m + 8 (16-byte aligned); element (m, r, c) holds the value 1000·m + 10·r + c.
    let stride = 24;
    let base = |m: usize| 200 * m + 8;
    let n = base(3) + 8 * stride + 8;
    let mut image = vec![0xABCDu16; n];
    for m in 0..4 {
        for r in 0..8 {
            for c in 0..8 {
                image[base(m) + r * stride + c] = (1000 * m + 10 * r + c) as u16;
            }
        }
    }
    let elem = |m: usize, r: usize, c: usize| (1000 * m + 10 * r + c) as u32;
    for (mode, nmat, trans) in [(0, 1, false), (1, 2, false), (2, 4, false), (3, 1, true), (4, 2, true), (5, 4, true)] {
        // Lanes beyond the used ones pass addresses far outside shared memory: they must be ignored.
        let offsets: Vec<i32> =
            (0..32).map(|q| if q / 8 < nmat { (base(q / 8) + (q % 8) * stride) as i32 } else { 1_000_000 }).collect();
        let mut bufs = [
            EmuBuffer::from_slice("image", &image).unwrap(),
            EmuBuffer::from_slice("row_offset", &offsets).unwrap(),
            EmuBuffer::zeroed("out", 32 * 16).unwrap(),
        ];
        let args = [Arg::Buf(0), Arg::I32(n as i32), Arg::Buf(1), Arg::Buf(2), Arg::I32(mode)];
        launch("emutest_ldmatrix", [1, 1, 1], [32, 1, 1], (n * 2).next_multiple_of(16) as u32, &args, &mut bufs)
            .unwrap();
        let out: Vec<u32> = bufs[2].to_vec().unwrap();
        for lane in 0..32 {
            for m in 0..nmat {
                let (g, t) = (lane / 4, lane % 4);
                let (lo, hi) = if trans {
                    (elem(m, 2 * t, g), elem(m, 2 * t + 1, g))
                } else {
                    (elem(m, g, 2 * t), elem(m, g, 2 * t + 1))
                };
                assert_eq!(out[lane * 4 + m], lo | hi << 16, "mode {mode} lane {lane} matrix {m}");
            }
        }
    }
}

#[test]
fn ldmatrix_reports_a_misaligned_row_address() {
    let image = vec![0u16; 512];
    let offsets: Vec<i32> = (0..32).map(|q| if q == 5 { 8 * 5 + 3 } else { 8 * q }).collect();
    let mut bufs = [
        EmuBuffer::from_slice("image", &image).unwrap(),
        EmuBuffer::from_slice("row_offset", &offsets).unwrap(),
        EmuBuffer::zeroed("out", 32 * 16).unwrap(),
    ];
    let args = [Arg::Buf(0), Arg::I32(512), Arg::Buf(1), Arg::Buf(2), Arg::I32(2)];
    let msg = err_text(launch("emutest_ldmatrix", [1, 1, 1], [32, 1, 1], 1024, &args, &mut bufs));
    assert!(msg.contains("misaligned shared ldmatrix_x4") && msg.contains("thread (5,0,0)"), "{msg}");
}

// ---- shuffles, votes, reductions ----

#[test]
fn shuffles_votes_and_reductions_follow_the_cuda_rules() {
    let warps = 2;
    let n = 32 * warps;
    let input: Vec<f32> = (0..n).map(|t| ((t * 37) % 23) as f32 - 11.0 + (t as f32) * 0.25).collect();
    let mut bufs = [EmuBuffer::from_slice("in", &input).unwrap(), EmuBuffer::zeroed("out", n * 12 * 4).unwrap()];
    let src_mul = 7;
    launch(
        "emutest_warp_ops",
        [1, 1, 1],
        [n as u32, 1, 1],
        0,
        &[Arg::Buf(0), Arg::Buf(1), Arg::I32(src_mul)],
        &mut bufs,
    )
    .unwrap();
    let out: Vec<f32> = bufs[1].to_vec().unwrap();
    for w in 0..warps {
        let v = &input[w * 32..][..32];
        let ballot: u32 = (0..32).filter(|&l| v[l] > 0.0).map(|l| 1u32 << l).sum();
        let mut sum_tree = v.to_vec(); // butterfly sum in the order the kernel's xor loop adds
        for m in [16, 8, 4, 2, 1] {
            let prev = sum_tree.clone();
            for l in 0..32 {
                sum_tree[l] = prev[l] + prev[l ^ m];
            }
        }
        for l in 0..32 {
            let o = &out[(w * 32 + l) * 12..][..12];
            assert_eq!(o[0], v[(l * src_mul as usize) % 32], "shfl lane {l}");
            assert_eq!(o[1], v[l ^ 5], "shfl_xor lane {l}");
            assert_eq!(o[2], if l + 3 < 32 { v[l + 3] } else { v[l] }, "shfl_down lane {l}");
            assert_eq!(o[3].to_bits(), ballot, "ballot lane {l}");
            assert_eq!(o[4], 0.0, "any");
            assert_eq!(o[5], 1.0, "all");
            assert_eq!(o[6], sum_tree[l], "warp_sum lane {l}");
            assert_eq!(o[7], v.iter().cloned().fold(f32::MIN, f32::max), "warp_max lane {l}");
            let g8 = &v[l / 8 * 8..][..8];
            let s8 = ((g8[0] + g8[4]) + (g8[2] + g8[6])) + ((g8[1] + g8[5]) + (g8[3] + g8[7]));
            let mut grp = v[l / 8 * 8..][..8].to_vec();
            for m in [4, 2, 1] {
                let prev = grp.clone();
                for i in 0..8 {
                    grp[i] = prev[i] + prev[i ^ m];
                }
            }
            assert_eq!(o[8], grp[l % 8], "group_sum(8) lane {l}");
            assert!((o[8] - s8).abs() <= 1e-4 * s8.abs().max(1.0));
            assert_eq!(o[9], v[l / 4 * 4..][..4].iter().cloned().fold(f32::MIN, f32::max), "group_max(4) lane {l}");
            assert_eq!(o[10], w as f32, "warp_id");
            assert_eq!(o[11], if l >= 2 { (l - 2) as f32 } else { l as f32 }, "shfl_up lane {l}");
        }
    }
}

// ---- barriers and geometry ----

#[test]
fn barriers_and_thread_geometry_work_in_three_dimensions() {
    let block = [8u32, 4, 2];
    let grid = [3u32, 2, 2];
    let threads = 64usize;
    let blocks = 12usize;
    let n = threads * blocks - 5; // the last block has a tail
    let input: Vec<f32> = (0..n).map(|i| (i % 17) as f32).collect();
    let mut bufs = [
        EmuBuffer::from_slice("in", &input).unwrap(),
        EmuBuffer::poisoned("out", blocks * 4).unwrap(),
        EmuBuffer::poisoned("ids", threads * blocks * 8).unwrap(),
    ];
    let args = [Arg::Buf(0), Arg::Buf(1), Arg::Buf(2), Arg::I32(n as i32)];
    launch("emutest_block_sum", grid, block, (threads * 4) as u32, &args, &mut bufs).unwrap();
    let out: Vec<f32> = bufs[1].to_vec().unwrap();
    let ids: Vec<i32> = bufs[2].to_vec().unwrap();
    for b in 0..blocks {
        let e: f32 = input.iter().skip(b * threads).take(threads).sum();
        assert_eq!(out[b], e, "block {b}");
        for t in 0..threads {
            assert_eq!((ids[(b * threads + t) * 2], ids[(b * threads + t) * 2 + 1]), (t as i32, b as i32));
        }
    }
}

// ---- cp.async ----

#[test]
fn cp_async_lands_only_when_a_wait_requires_its_group() {
    let src: Vec<f32> = (0..128).map(|i| i as f32 + 0.5).collect();
    for skip in [128, 100] {
        let mut bufs = [EmuBuffer::from_slice("src", &src).unwrap(), EmuBuffer::zeroed("out", 256 * 4).unwrap()];
        launch("emutest_cp_async", [1, 1, 1], [64, 1, 1], 512, &[Arg::Buf(0), Arg::Buf(1), Arg::I32(skip)], &mut bufs)
            .unwrap();
        let out: Vec<u32> = bufs[1].to_vec().unwrap();
        let want = |i: usize| if (i as i32) < skip { src[i].to_bits() } else { 0 };
        for t in 0..64 {
            assert_eq!(out[t], 0xFFFF_FFFF, "read before the wait must see the poison (thread {t})");
            assert_eq!(out[64 + t], want(t), "group 0 after wait<1> (thread {t})");
            assert_eq!(out[128 + t], 0xFFFF_FFFF, "group 1 still pending after wait<1> (element {})", 64 + t);
            assert_eq!(out[192 + t], want(64 + t), "group 1 after wait_all (element {})", 64 + t);
        }
    }
}

// ---- invalid accesses and programs are reported with kernel, block and thread ----

#[test]
fn out_of_bounds_global_access_is_reported_with_kernel_block_thread_and_buffer() {
    let mut bufs = [EmuBuffer::zeroed("out", 40 * 4).unwrap()];
    let msg = err_text(launch("emutest_oob_global", [2, 1, 1], [64, 1, 1], 0, &[Arg::Buf(0)], &mut bufs));
    assert!(msg.contains("kernel `emutest_oob_global`"), "{msg}");
    assert!(
        msg.contains("out-of-bounds global access of 4 bytes at byte offset 160 of buffer 0 `out` (160 bytes) in block (0,0,0) thread (40,0,0)"),
        "{msg}"
    );
    assert!(msg.contains("24 invalid operation(s)"), "only the first block runs after an error: {msg}");
    // The in-bounds writes happened; nothing outside the buffer was touched (the sink absorbed the rest).
    assert!(bufs[0].to_vec::<f32>().unwrap().iter().all(|&x| x == 1.0));
}

#[test]
fn out_of_bounds_shared_access_is_reported() {
    let mut bufs = [EmuBuffer::zeroed("out", 64 * 4).unwrap()];
    let msg = err_text(launch("emutest_oob_shared", [1, 1, 1], [64, 1, 1], 128, &[Arg::Buf(0)], &mut bufs));
    assert!(
        msg.contains("out-of-bounds shared access of 4 bytes at byte offset 128 of dynamic shared memory (128 bytes) in block (0,0,0) thread (32,0,0)"),
        "{msg}"
    );
}

#[test]
fn deadlocks_divergent_barriers_misalignment_and_partial_warps_are_errors() {
    let run = |mode: i32, threads: u32| {
        let mut bufs = [EmuBuffer::zeroed("out", 64 * 4).unwrap()];
        err_text(launch("emutest_invalid", [1, 1, 1], [threads, 1, 1], 0, &[Arg::Buf(0), Arg::I32(mode)], &mut bufs))
    };
    let m = run(0, 32);
    assert!(m.contains("deadlock in block (0,0,0)") && m.contains("16 wait at __syncthreads"), "{m}");
    let m = run(1, 32);
    assert!(m.contains("threads reached different __syncthreads"), "{m}");
    let m = run(2, 32);
    assert!(
        m.contains("misaligned global ld128 of 16 bytes at byte offset 4") && m.contains("16-byte alignment"),
        "{m}"
    );
    let m = run(3, 48);
    assert!(m.contains("reached by 16 of 32 lanes"), "{m}");
}

#[test]
fn invalid_launches_are_errors_not_crashes() {
    let mut bufs = [EmuBuffer::zeroed("out", 64 * 4).unwrap()];
    let m = err_text(launch("no_such_kernel", [1, 1, 1], [32, 1, 1], 0, &[], &mut bufs));
    assert!(m.contains("not in the emulator's launch table"), "{m}");
    let m = err_text(launch("emutest_oob_global", [1, 1, 1], [32, 1, 1], 0, &[Arg::I32(3)], &mut bufs));
    assert!(m.contains("parameter 0 is a buffer, the launch passes an int"), "{m}");
    let m = err_text(launch("emutest_oob_global", [1, 1, 1], [32, 1, 1], 0, &[], &mut bufs));
    assert!(m.contains("takes 1 arguments, the launch passes 0"), "{m}");
    let m = err_text(launch("emutest_oob_global", [0, 1, 1], [32, 1, 1], 0, &[Arg::Buf(0)], &mut bufs));
    assert!(m.contains("invalid grid"), "{m}");
    let m = err_text(launch("emutest_oob_global", [1, 1, 1], [2048, 1, 1], 0, &[Arg::Buf(0)], &mut bufs));
    assert!(m.contains("invalid block"), "{m}");
    let m = err_text(launch("emutest_oob_global", [1, 1, 1], [32, 1, 1], 300_000, &[Arg::Buf(0)], &mut bufs));
    assert!(m.contains("227 KiB"), "{m}");
    let m = err_text(launch("emutest_oob_global", [1, 1, 1], [32, 1, 1], 0, &[Arg::Buf(3)], &mut bufs));
    assert!(m.contains("refers to buffer 3"), "{m}");
}

// ---- conversions, bit for bit against `half` ----

#[test]
fn every_f16_and_bf16_bit_pattern_widens_like_half() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let f = convert::f16_bits_to_f32(&all);
    let b = convert::bf16_bits_to_f32(&all);
    for (i, &h) in all.iter().enumerate() {
        assert_eq!(f[i].to_bits(), f16::from_bits(h).to_f32().to_bits(), "f16 {h:#06x}");
        assert_eq!(b[i].to_bits(), bf16::from_bits(h).to_f32().to_bits(), "bf16 {h:#06x}");
    }
}

/// Every rounding boundary: for each 16-bit value, the f32 values at, just below and just above the midpoint to
/// its successor, plus a strided sweep over all f32 bit patterns (every exponent, varied mantissas, NaNs, Infs).
fn f32_probes(widen: fn(u16) -> f32) -> Vec<f32> {
    let mut xs = Vec::new();
    for h in 0..=u16::MAX {
        let x = widen(h);
        let next = widen(h.wrapping_add(1));
        xs.push(x);
        if x.is_finite() && next.is_finite() && (x >= 0.0) == (next >= 0.0) && h & 0x7FFF != 0x7FFF {
            let mid = ((x as f64 + next as f64) / 2.0) as f32; // exact: 16-bit values have few mantissa bits
            xs.extend([mid, f32::from_bits(mid.to_bits() - 1), f32::from_bits(mid.to_bits() + 1)]);
        }
    }
    xs.extend((0..=u32::MAX).step_by(251).map(f32::from_bits));
    xs
}

#[test]
fn f32_to_f16_rounds_exactly_like_half() {
    let xs = f32_probes(|h| f16::from_bits(h).to_f32());
    let got = convert::f32_to_f16_bits(&xs);
    for (x, g) in xs.iter().zip(got) {
        assert_eq!(g, f16::from_f32(*x).to_bits(), "f32 {:#010x}", x.to_bits());
    }
}

#[test]
fn f32_to_bf16_rounds_exactly_like_half() {
    let xs = f32_probes(|h| bf16::from_bits(h).to_f32());
    let got = convert::f32_to_bf16_bits(&xs);
    for (x, g) in xs.iter().zip(got) {
        assert_eq!(g, bf16::from_f32(*x).to_bits(), "f32 {:#010x}", x.to_bits());
    }
}

#[test]
fn kernels_convert_with_the_same_rounding() {
    let xs: Vec<f32> = f32_probes(|h| f16::from_bits(h).to_f32()).into_iter().step_by(97).collect();
    let n = xs.len();
    let mut bufs = [EmuBuffer::from_slice("in", &xs).unwrap(), EmuBuffer::zeroed("out", n * 16).unwrap()];
    launch("emutest_convert", [1, 1, 1], [128, 1, 1], 0, &[Arg::Buf(0), Arg::Buf(1), Arg::I32(n as i32)], &mut bufs)
        .unwrap();
    let out: Vec<u32> = bufs[1].to_vec().unwrap();
    for (i, &x) in xs.iter().enumerate() {
        let (h, nh) = (f16::from_f32(x).to_bits() as u32, f16::from_f32(-x).to_bits() as u32);
        let (b, nb) = (bf16::from_f32(x).to_bits() as u32, bf16::from_f32(-x).to_bits() as u32);
        assert_eq!(out[i * 4], h | nh << 16, "pack2<f16> {x}");
        assert_eq!(out[i * 4 + 1], b | nb << 16, "pack2<bf16> {x}");
        assert_eq!(out[i * 4 + 2], f16::from_f32(x).to_f32().to_bits(), "from_f32<f16> {x}");
        assert_eq!(out[i * 4 + 3], bf16::from_f32(x).to_f32().to_bits(), "from_f32<bf16> {x}");
    }
}

// ---- the launch table holds every kernel joule-launch knows ----

#[test]
fn every_planned_kernel_is_in_the_emulators_launch_table() {
    assert!(joule_emu::COMPILE_FAILURES.is_empty(), "{:?}", joule_emu::COMPILE_FAILURES);
    let table: Vec<String> = joule_emu::kernels().into_iter().map(|(n, _)| n).collect();
    for k in joule_launch::kernels() {
        assert!(table.iter().any(|n| n == k.name), "{} ({}) is not in the launch table", k.name, k.source);
    }
}

#[test]
fn a_missing_barrier_reads_poison_in_one_of_the_two_thread_orders() {
    // Blocks alternate the order threads run in, so reading a neighbour's shared write without __syncthreads sees
    // the 0xFF poison (NaN) whichever neighbour it is; with a barrier the same kernel would read t + dir.
    for dir in [1, -1] {
        let mut bufs = [EmuBuffer::zeroed("out", 2 * 64 * 4).unwrap()];
        launch("emutest_missing_barrier", [2, 1, 1], [64, 1, 1], 256, &[Arg::Buf(0), Arg::I32(dir)], &mut bufs)
            .unwrap();
        let out: Vec<f32> = bufs[0].to_vec().unwrap();
        let stale = out.iter().filter(|x| x.is_nan()).count();
        assert!(stale >= 63, "dir {dir}: only {stale} reads saw the poison: {out:?}");
    }
}

/// Run in a child process by the test below: launches a kernel that loops forever.
#[test]
#[ignore = "run as a child process by a_kernel_that_never_finishes_aborts_with_a_message"]
fn child_launches_a_kernel_that_never_finishes() {
    let mut bufs = [EmuBuffer::zeroed("out", 4).unwrap()];
    let _ = launch("emutest_forever", [1, 1, 1], [1, 1, 1], 0, &[Arg::Buf(0)], &mut bufs);
}

#[test]
fn a_kernel_that_never_finishes_aborts_with_a_message_instead_of_hanging() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "child_launches_a_kernel_that_never_finishes", "--nocapture"])
        .env("JOULE_EMU_TIMEOUT_S", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child should have been aborted: {stderr}");
    assert!(stderr.contains("kernel `emutest_forever` block (0,0,0) made no progress for 1 s"), "stderr: {stderr}");
}

#[test]
fn cuda_half2_pairs_round_like_pack2() {
    let mut bufs = [EmuBuffer::zeroed("out", 4).unwrap()];
    launch("emutest_pairs", [1, 1, 1], [1, 1, 1], 0, &[Arg::Buf(0), Arg::F32(1.0 / 3.0), Arg::F32(-2.7)], &mut bufs)
        .unwrap();
    let want = f16::from_f32(1.0 / 3.0).to_f32()
        + f16::from_f32(-2.7).to_f32()
        + bf16::from_f32(1.0 / 3.0).to_f32()
        + bf16::from_f32(-2.7).to_f32();
    assert_eq!(bufs[0].to_vec::<f32>().unwrap()[0], want);
}

// ---- plans: launches in order, scratch buffers after the operation's own, poisoned ----

fn warp_sum_plan(scratch_first: bool) -> joule_launch::OpPlan {
    use joule_launch::{LaunchPlan, OpPlan};
    let mut launches = Vec::new();
    if scratch_first {
        // Fill the scratch (buffer 1) with 1.0 ...
        launches.push(LaunchPlan {
            kernel: "emutest_oob_global",
            source: "emu/tests/primitives.cu",
            grid: [1, 1, 1],
            block: [32, 1, 1],
            smem_bytes: 0,
            args: vec![Arg::Buf(1)],
        });
    }
    // ... then sum it over the warp into buffer 0.
    launches.push(LaunchPlan {
        kernel: "emutest_warp_ops",
        source: "emu/tests/primitives.cu",
        grid: [1, 1, 1],
        block: [32, 1, 1],
        smem_bytes: 0,
        args: vec![Arg::Buf(1), Arg::Buf(0), Arg::I32(1)],
    });
    OpPlan { launches, scratch_bytes: vec![32 * 4] }
}

#[test]
fn run_plan_runs_launches_in_order_on_poisoned_scratch_after_the_op_buffers() {
    let mut bufs = [EmuBuffer::zeroed("out", 32 * 12 * 4).unwrap()];
    joule_emu::run_plan(&warp_sum_plan(true), &mut bufs).unwrap();
    let out: Vec<f32> = bufs[0].to_vec().unwrap();
    assert!((0..32).all(|l| out[l * 12 + 6] == 32.0), "warp sums of the filled scratch: {out:?}");
    joule_emu::run_plan(&warp_sum_plan(false), &mut bufs).unwrap();
    let out: Vec<f32> = bufs[0].to_vec().unwrap();
    assert!((0..32).all(|l| out[l * 12 + 6].is_nan()), "an unwritten scratch buffer reads as NaN");
}

#[test]
fn emu_buffers_round_trip_and_refuse_bad_conversions() {
    let b = EmuBuffer::from_slice("x", &[1u16, 2, 3]).unwrap();
    assert_eq!(b.len(), 6);
    assert_eq!(b.to_vec::<u16>().unwrap(), vec![1, 2, 3]);
    assert!(b.to_vec::<u32>().is_err());
    let mut two = [0u16; 2];
    b.copy_to(&mut two).unwrap();
    assert_eq!(two, [1, 2]);
    assert!(b.copy_to(&mut [0u16; 4]).is_err());
    assert!(EmuBuffer::zeroed("empty", 0).unwrap().is_empty());
    assert!(EmuBuffer::poisoned("p", 8).unwrap().to_vec::<f32>().unwrap().iter().all(|x| x.is_nan()));
}

#[test]
fn every_primitive_of_the_cuda_branch_of_common_cuh_is_emulated() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cuda");
    let common = std::fs::read_to_string(dir.join("common.cuh")).unwrap();
    let emu = std::fs::read_to_string(dir.join("emu/emu.h")).unwrap();
    let start = common.find("#else").expect("common.cuh has a CUDA branch after #else");
    let end = common.find("#endif  // JOULE_EMULATE").expect("common.cuh closes the CUDA branch");
    let mut names = Vec::new();
    for line in common[start..end].lines() {
        // `JOULE_DEVICE <type> <name>(` declares a primitive.
        if let Some(rest) = line.trim_start().strip_prefix("JOULE_DEVICE ")
            && let Some(open) = rest.find('(')
            && let Some(name) = rest[..open].split_whitespace().last()
        {
            names.push(name.to_string());
        }
    }
    assert!(names.len() > 30, "found only {names:?}");
    for n in names {
        assert!(emu.contains(&format!(" {n}(")), "common.cuh's `{n}` has no emulated version in cuda/emu/emu.h");
    }
}
