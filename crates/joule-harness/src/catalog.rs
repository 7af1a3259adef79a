//! The named shapes: real layers of BERT-base/DistilBERT, MobileNetV2, EfficientNet-B0 and a 7B decoder.
//!
//! Names read `<model>.<layer>.<size>`: `t128` is 128 tokens (batch 1), `s512` a sequence of 512, `h4` 4 of the
//! model's heads, `112x112x32-s1-to16` a depthwise-separable block's input H×W×C, stride and pointwise output
//! channels. Every shape runs at batch 1 (one sequence or one image, as in latency-bound inference). Where a shape
//! is smaller than the real layer, the name says so with a `scaled` tag and [`NamedShape::note`] says how.
//!
//! Sources for the layer sizes: BERT-base (Devlin et al. 2019: hidden 768, 12 heads of 64, FFN 3072; DistilBERT
//! keeps these), MobileNetV2 (Sandler et al. 2018, Table 2: expansion 6), EfficientNet-B0 (Tan & Le 2019, Table 1:
//! MBConv6 5×5 stages), and the LLaMA-7B configuration (hidden 4096, 32 heads of 128, MLP 11008).

use crate::plan::ShapeSet;
use joule_core::{AttnShape, DwConvShape, GemmShape};
use serde::{Deserialize, Serialize};

/// The shape of one kernel family.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ShapeSpec {
    /// A GEMM (`m` = tokens, `k` = input features, `n` = output features).
    Gemm(GemmShape),
    /// A depthwise-separable block (measured as depthwise, pointwise and fused).
    DwConv(DwConvShape),
    /// Attention.
    Attention(AttnShape),
}

/// A shape named after the layer it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedShape {
    /// `<model>.<layer>.<size>`, unique within the catalog.
    pub name: String,
    /// The model (`bert-base`, `mobilenetv2`, ...).
    pub model: String,
    /// What the layer is, in words.
    pub layer: String,
    /// What was scaled down from the real layer, or empty when nothing was.
    pub note: String,
    /// The shape.
    pub spec: ShapeSpec,
}

fn shape(name: &str, layer: &str, note: &str, spec: ShapeSpec) -> NamedShape {
    NamedShape {
        name: name.into(),
        model: name.split('.').next().unwrap_or(name).into(),
        layer: layer.into(),
        note: note.into(),
        spec,
    }
}

fn gemm(name: &str, layer: &str, note: &str, m: usize, k: usize, n: usize) -> NamedShape {
    shape(name, layer, note, ShapeSpec::Gemm(GemmShape::new(m, n, k)))
}

#[allow(clippy::too_many_arguments)]
fn block(name: &str, layer: &str, note: &str, hw: usize, c: usize, k: usize, stride: usize, out: usize) -> NamedShape {
    shape(name, layer, note, ShapeSpec::DwConv(DwConvShape::new(1, hw, hw, c, k, stride, out)))
}

fn attn(name: &str, layer: &str, note: &str, s: AttnShape) -> NamedShape {
    shape(name, layer, note, ShapeSpec::Attention(s))
}

/// BERT-base at 128 tokens (the default set's transformer layers).
fn bert_128() -> Vec<NamedShape> {
    vec![
        gemm("bert-base.qkv-proj.t128", "fused Q/K/V projection 768→2304, 128 tokens", "", 128, 768, 2304),
        gemm("bert-base.ffn-up.t128", "FFN up-projection 768→3072, 128 tokens", "", 128, 768, 3072),
        gemm("bert-base.ffn-down.t128", "FFN down-projection 3072→768, 128 tokens", "", 128, 3072, 768),
        attn(
            "bert-base.attention.s128",
            "self-attention, 12 heads × 64, sequence 128",
            "",
            AttnShape::new(1, 12, 128, 128, 64),
        ),
        attn(
            "bert-base.attention.s512",
            "self-attention, 12 heads × 64, sequence 512",
            "",
            AttnShape::new(1, 12, 512, 512, 64),
        ),
    ]
}

/// BERT-base layers only in the larger sets.
fn bert_extra() -> Vec<NamedShape> {
    vec![
        gemm("bert-base.attn-out.t128", "attention output projection 768→768, 128 tokens", "", 128, 768, 768),
        gemm("bert-base.qkv-proj.t512", "fused Q/K/V projection 768→2304, 512 tokens", "", 512, 768, 2304),
        gemm("bert-base.attn-out.t512", "attention output projection 768→768, 512 tokens", "", 512, 768, 768),
        gemm("bert-base.ffn-up.t512", "FFN up-projection 768→3072, 512 tokens", "", 512, 768, 3072),
        gemm("bert-base.ffn-down.t512", "FFN down-projection 3072→768, 512 tokens", "", 512, 3072, 768),
    ]
}

/// The default set's CNN blocks.
fn cnn_default() -> Vec<NamedShape> {
    vec![
        block(
            "mobilenetv2.b1-dw3x3.112x112x32-s1-to16",
            "MobileNetV2 block 1 (t=1): dw 3×3 s1, project 32→16",
            "",
            112,
            32,
            3,
            1,
            16,
        ),
        block(
            "mobilenetv2.b3-dw3x3.56x56x144-s2-to24",
            "MobileNetV2 stage-3 first block: dw 3×3 s2 on 6×24, project →24",
            "",
            56,
            144,
            3,
            2,
            24,
        ),
        block(
            "mobilenetv2.b13-dw3x3.14x14x576-s1-to96",
            "MobileNetV2 stage-5 block: dw 3×3 s1 on 6×96, project →96",
            "",
            14,
            576,
            3,
            1,
            96,
        ),
        block(
            "efficientnet-b0.mb6-dw5x5.28x28x240-s1-to40",
            "EfficientNet-B0 stage-3 MBConv6: dw 5×5 s1 on 6×40, project →40",
            "",
            28,
            240,
            5,
            1,
            40,
        ),
    ]
}

/// CNN blocks only in the larger sets.
fn cnn_extra() -> Vec<NamedShape> {
    vec![
        block(
            "mobilenetv2.b6-dw3x3.28x28x192-s1-to32",
            "MobileNetV2 stage-3 block: dw 3×3 s1 on 6×32, project →32",
            "",
            28,
            192,
            3,
            1,
            32,
        ),
        block(
            "mobilenetv2.b7-dw3x3.28x28x192-s2-to64",
            "MobileNetV2 stage-4 first block: dw 3×3 s2 on 6×32, project →64",
            "",
            28,
            192,
            3,
            2,
            64,
        ),
        block(
            "mobilenetv2.b17-dw3x3.7x7x960-s1-to320",
            "MobileNetV2 last block: dw 3×3 s1 on 6×160, project →320",
            "",
            7,
            960,
            3,
            1,
            320,
        ),
        block(
            "efficientnet-b0.mb6-dw5x5.56x56x144-s2-to40",
            "EfficientNet-B0 stage-3 first MBConv6: dw 5×5 s2 on 6×24, project →40",
            "",
            56,
            144,
            5,
            2,
            40,
        ),
        block(
            "efficientnet-b0.mb6-dw5x5.14x14x672-s1-to112",
            "EfficientNet-B0 stage-5 MBConv6: dw 5×5 s1 on 6×112, project →112",
            "",
            14,
            672,
            5,
            1,
            112,
        ),
        block(
            "efficientnet-b0.mb6-dw5x5.7x7x1152-s1-to192",
            "EfficientNet-B0 stage-6 MBConv6: dw 5×5 s1 on 6×192, project →192",
            "",
            7,
            1152,
            5,
            1,
            192,
        ),
    ]
}

/// A 7B decoder (LLaMA-7B sizes), a prefill chunk of 128 tokens and one decode step.
fn decoder_7b() -> Vec<NamedShape> {
    vec![
        gemm("decoder-7b.attn-proj.t128", "Q, K, V or output projection 4096→4096, 128 tokens", "", 128, 4096, 4096),
        gemm("decoder-7b.mlp-up.t128", "MLP gate/up projection 4096→11008, 128 tokens", "", 128, 4096, 11008),
        gemm("decoder-7b.mlp-down.t128", "MLP down projection 11008→4096, 128 tokens", "", 128, 11008, 4096),
        attn(
            "decoder-7b.attention.causal-s512",
            "causal self-attention, 32 heads × 128, sequence 512 (prefill)",
            "",
            AttnShape::new(1, 32, 512, 512, 128).with_causal(true),
        ),
        attn(
            "decoder-7b.attention.decode-q1-kv2048",
            "one decode step: 1 query against a 2048-entry KV cache, 32 heads × 128",
            "",
            AttnShape::new(1, 32, 1, 2048, 128).with_causal(true),
        ),
    ]
}

/// CI-sized shapes, each a real layer cut down (the name's `scaled` tag and the note say how).
fn quick() -> Vec<NamedShape> {
    vec![
        gemm("bert-base.ffn-up.t16-scaled", "FFN up-projection 768→3072", "16 tokens instead of 128", 16, 768, 3072),
        block(
            "mobilenetv2.b13-dw3x3.14x14x576-s1-to96",
            "MobileNetV2 stage-5 block: dw 3×3 s1 on 6×96, project →96",
            "",
            14,
            576,
            3,
            1,
            96,
        ),
        attn(
            "bert-base.attention.s128-h2-scaled",
            "self-attention, heads × 64, sequence 128",
            "2 of the 12 heads",
            AttnShape::new(1, 2, 128, 128, 64),
        ),
    ]
}

/// The shapes of a set, in run order.
pub fn shapes(set: ShapeSet) -> Vec<NamedShape> {
    match set {
        ShapeSet::Quick => quick(),
        ShapeSet::Default => {
            let b = bert_128();
            // GEMMs first, then CNN blocks, then attention: cheap families early in the progress bar.
            let (attn, gemms): (Vec<_>, Vec<_>) =
                b.into_iter().partition(|s| matches!(s.spec, ShapeSpec::Attention(_)));
            gemms.into_iter().chain(cnn_default()).chain(attn).collect()
        }
        ShapeSet::Bert => bert_128().into_iter().chain(bert_extra()).collect(),
        ShapeSet::Cnn => cnn_default().into_iter().chain(cnn_extra()).collect(),
        ShapeSet::Decoder7b => decoder_7b(),
        ShapeSet::Full => [ShapeSet::Default, ShapeSet::Bert, ShapeSet::Cnn, ShapeSet::Decoder7b]
            .into_iter()
            .flat_map(shapes)
            .fold(Vec::new(), |mut acc: Vec<NamedShape>, s| {
                if !acc.iter().any(|t| t.name == s.name) {
                    acc.push(s);
                }
                acc
            }),
    }
}

/// Every shape of every set (unique by name).
pub fn all_shapes() -> Vec<NamedShape> {
    let mut out = shapes(ShapeSet::Full);
    for s in shapes(ShapeSet::Quick) {
        if !out.iter().any(|t| t.name == s.name) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_shape_is_valid_and_uniquely_named() {
        let all = all_shapes();
        let mut names: Vec<_> = all.iter().map(|s| s.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for s in &all {
            match &s.spec {
                ShapeSpec::Gemm(g) => g.validate().unwrap(),
                ShapeSpec::DwConv(d) => d.validate().unwrap(),
                ShapeSpec::Attention(a) => a.validate().unwrap(),
            }
            assert_eq!(s.name.contains("scaled"), !s.note.is_empty(), "{}: scaled tag and note go together", s.name);
        }
    }

    #[test]
    fn block_output_sizes_match_the_papers() {
        let find = |n: &str| all_shapes().into_iter().find(|s| s.name == n).unwrap();
        let ShapeSpec::DwConv(d) = find("mobilenetv2.b3-dw3x3.56x56x144-s2-to24").spec else { panic!() };
        assert_eq!((d.out_h(), d.out_w(), d.out_channels), (28, 28, 24));
        let ShapeSpec::DwConv(d) = find("efficientnet-b0.mb6-dw5x5.56x56x144-s2-to40").spec else { panic!() };
        assert_eq!((d.out_h(), d.kernel_h), (28, 5));
    }
}
