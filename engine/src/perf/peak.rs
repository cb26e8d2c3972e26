//! Dense peak throughput of known GPUs, the denominator of MFU.
//!
//! Figures are the vendor's dense (no structured sparsity) peaks in TFLOP/s. `bf16` is the
//! tensor-core rate with fp32 accumulation (what cuBLAS uses for bf16 GEMMs); `fp32` is the
//! plain FP32 rate, since libtorch does not use TF32 for fp32 matrix products unless asked
//! (`torch.backends.cuda.matmul.allow_tf32` is off by default).

use experiments::Precision;

/// One row of the table: a name fragment as `nvidia-smi` reports it, and the peaks.
struct Gpu {
    /// Every fragment must occur in the reported name (case-insensitive).
    matches: &'static [&'static str],
    fp32: f64,
    bf16: Option<f64>,
}

/// Most specific first: the first row whose fragments all occur wins.
const GPUS: &[Gpu] = &[
    Gpu {
        matches: &["h200"],
        fp32: 67.0,
        bf16: Some(989.4),
    },
    Gpu {
        matches: &["h100", "pcie"],
        fp32: 51.2,
        bf16: Some(756.5),
    },
    Gpu {
        matches: &["h100", "nvl"],
        fp32: 60.0,
        bf16: Some(835.0),
    },
    // "NVIDIA H100 80GB HBM3" is the SXM part.
    Gpu {
        matches: &["h100"],
        fp32: 67.0,
        bf16: Some(989.4),
    },
    Gpu {
        matches: &["a100"],
        fp32: 19.5,
        bf16: Some(312.0),
    },
    Gpu {
        matches: &["l40s"],
        fp32: 91.6,
        bf16: Some(362.05),
    },
    Gpu {
        matches: &["l40"],
        fp32: 90.5,
        bf16: Some(181.05),
    },
    Gpu {
        matches: &["l4"],
        fp32: 30.3,
        bf16: Some(121.0),
    },
    Gpu {
        matches: &["a10"],
        fp32: 31.2,
        bf16: Some(125.0),
    },
    Gpu {
        matches: &["rtx 6000 ada"],
        fp32: 91.1,
        bf16: Some(364.2),
    },
    Gpu {
        matches: &["rtx a6000"],
        fp32: 38.7,
        bf16: Some(154.8),
    },
    Gpu {
        matches: &["rtx 4090"],
        fp32: 82.6,
        bf16: Some(165.2),
    },
    Gpu {
        matches: &["rtx 3090"],
        fp32: 35.6,
        bf16: Some(71.0),
    },
    // Volta and Turing have no bf16 tensor cores.
    Gpu {
        matches: &["v100"],
        fp32: 15.7,
        bf16: None,
    },
    Gpu {
        matches: &["t4"],
        fp32: 8.1,
        bf16: None,
    },
];

/// The dense peak TFLOP/s of the GPU reported as `name` at `precision`, when the table knows it.
pub fn dense_peak_tflops(name: &str, precision: Precision) -> Option<f64> {
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    // A fragment of several words matches consecutive words; one word matches a whole word
    // ("l4" must not match "l40s", "a10" not "a100").
    let has = |fragment: &str| {
        let parts: Vec<&str> = fragment.split(' ').collect();
        words.windows(parts.len()).any(|w| w == parts.as_slice())
    };
    let gpu = GPUS.iter().find(|g| g.matches.iter().all(|m| has(m)))?;
    match precision {
        Precision::Fp32 => Some(gpu.fp32),
        Precision::Bf16 => gpu.bf16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_names_resolve_to_their_rows() {
        let bf16 = |n| dense_peak_tflops(n, Precision::Bf16);
        assert_eq!(bf16("NVIDIA H200"), Some(989.4));
        assert_eq!(bf16("NVIDIA H100 80GB HBM3"), Some(989.4));
        assert_eq!(bf16("NVIDIA H100 PCIe"), Some(756.5));
        assert_eq!(bf16("NVIDIA H100 NVL"), Some(835.0));
        assert_eq!(bf16("NVIDIA A100-SXM4-80GB"), Some(312.0));
        assert_eq!(bf16("NVIDIA A100 80GB PCIe"), Some(312.0));
        assert_eq!(bf16("NVIDIA L40S"), Some(362.05));
        assert_eq!(bf16("NVIDIA L4"), Some(121.0));
        assert_eq!(bf16("NVIDIA A10"), Some(125.0));
        assert_eq!(bf16("NVIDIA GeForce RTX 4090"), Some(165.2));
        assert_eq!(
            dense_peak_tflops("NVIDIA A100-SXM4-40GB", Precision::Fp32),
            Some(19.5)
        );
    }

    #[test]
    fn unknown_gpus_and_missing_precisions_have_no_peak() {
        assert_eq!(dense_peak_tflops("cuda:0", Precision::Bf16), None);
        assert_eq!(
            dense_peak_tflops("Tesla V100-SXM2-16GB", Precision::Bf16),
            None
        );
        assert_eq!(
            dense_peak_tflops("Tesla V100-SXM2-16GB", Precision::Fp32),
            Some(15.7)
        );
    }
}
