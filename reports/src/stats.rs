//! Descriptive statistics and t-tests, with the Student t distribution computed from the
//! regularized incomplete beta function (Lentz continued fraction, Numerical Recipes §6.4).

/// Mean, sample standard deviation and count of a set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample (n − 1) standard deviation; `None` for fewer than two values.
    pub std: Option<f64>,
}

impl Summary {
    /// `None` for an empty slice.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = mean(values);
        let std = (n > 1).then(|| sample_variance(values, mean).sqrt());
        Some(Summary { n, mean, std })
    }
}

pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Unbiased variance around a given mean; requires at least two values.
pub fn sample_variance(values: &[f64], mean: f64) -> f64 {
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() as f64 - 1.0)
}

/// Which test produced a [`TTest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKind {
    /// Welch's unequal-variance two-sample t-test.
    Welch,
    /// Paired t-test over matching seeds.
    Paired,
}

impl TestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TestKind::Welch => "welch",
            TestKind::Paired => "paired",
        }
    }
}

/// Result of a two-sided t-test of `a` against `b` (t > 0 when `a` has the larger mean).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    pub kind: TestKind,
    pub t: f64,
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Welch's t-test. `None` when a side has fewer than two values or both variances are zero
/// (the statistic is undefined).
pub fn welch(a: &[f64], b: &[f64]) -> Option<TTest> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (ma, mb) = (mean(a), mean(b));
    let (va, vb) = (sample_variance(a, ma) / na, sample_variance(b, mb) / nb);
    let se2 = va + vb;
    if se2 <= 0.0 || !se2.is_finite() {
        return None;
    }
    let t = (ma - mb) / se2.sqrt();
    // Welch–Satterthwaite degrees of freedom.
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    Some(TTest {
        kind: TestKind::Welch,
        t,
        df,
        p: student_t_two_sided_p(t, df),
    })
}

/// Paired t-test on `a[i] - b[i]`. `None` when the slices differ in length, hold fewer than two
/// pairs, or all differences are equal (zero variance).
pub fn paired(a: &[f64], b: &[f64]) -> Option<TTest> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len() as f64;
    let md = mean(&d);
    let var = sample_variance(&d, md);
    if var <= 0.0 || !var.is_finite() {
        return None;
    }
    let t = md / (var / n).sqrt();
    let df = n - 1.0;
    Some(TTest {
        kind: TestKind::Paired,
        t,
        df,
        p: student_t_two_sided_p(t, df),
    })
}

/// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
pub fn student_t_two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    let x = df / (df + t * t);
    regularized_incomplete_beta(x, df / 2.0, 0.5).clamp(0.0, 1.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized incomplete beta I_x(a, b) for 0 ≤ x ≤ 1, a, b > 0.
pub fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_continued_fraction(1.0 - x, b, a) / b
    }
}

fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const MAX_ITER: usize = 300;
    const EPS: f64 = 1e-16;
    const TINY: f64 = 1e-300;
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn mean_and_sample_std() {
        let s = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert!(close(s.mean, 5.0, 1e-12));
        // Population std is 2; the sample std is sqrt(32/7).
        assert!(close(s.std.unwrap(), (32.0f64 / 7.0).sqrt(), 1e-12));
        let one = Summary::of(&[3.5]).unwrap();
        assert_eq!((one.n, one.mean, one.std), (1, 3.5, None));
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn ln_gamma_matches_factorials_and_sqrt_pi() {
        assert!(close(ln_gamma(1.0), 0.0, 1e-13));
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-13));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-13
        ));
        assert!(close(ln_gamma(10.5), 1_133_278.388_7_f64.ln(), 1e-9));
    }

    #[test]
    fn incomplete_beta_known_values() {
        // I_x(1, 1) = x; I_x(a, 1) = x^a; I_0.5(a, a) = 0.5.
        assert!(close(
            regularized_incomplete_beta(0.3, 1.0, 1.0),
            0.3,
            1e-14
        ));
        assert!(close(
            regularized_incomplete_beta(0.7, 3.0, 1.0),
            0.343,
            1e-14
        ));
        assert!(close(
            regularized_incomplete_beta(0.5, 4.5, 4.5),
            0.5,
            1e-14
        ));
    }

    #[test]
    fn student_t_critical_values_from_tables() {
        // Two-sided 5% and 1% critical values of the t table.
        for (t, df, p) in [
            (12.706_204_736, 1.0, 0.05),
            (4.302_652_730, 2.0, 0.05),
            (2.228_138_852, 10.0, 0.05),
            (4.032_142_984, 5.0, 0.01),
            (2.845_339_707, 20.0, 0.01),
            (1.959_963_985, 1e7, 0.05),
        ] {
            let got = student_t_two_sided_p(t, df);
            assert!(close(got, p, 1e-7), "t={t} df={df}: {got} vs {p}");
        }
        assert!(close(student_t_two_sided_p(0.0, 3.0), 1.0, 1e-15));
        // df = 1 is the Cauchy distribution: P(|T| > 1) = 0.5.
        assert!(close(student_t_two_sided_p(1.0, 1.0), 0.5, 1e-14));
        assert_eq!(student_t_two_sided_p(f64::INFINITY, 3.0), 0.0);
    }

    // Student's sleep data (Cushny & Peebles 1905), as in R's `t.test` documentation.
    const SLEEP_1: [f64; 10] = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
    const SLEEP_2: [f64; 10] = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];

    #[test]
    fn welch_on_sleep_data_matches_r() {
        // R: t.test(extra ~ group, data = sleep): t = -1.8608, df = 17.776, p-value = 0.07939
        let r = welch(&SLEEP_1, &SLEEP_2).unwrap();
        assert_eq!(r.kind, TestKind::Welch);
        assert!(close(r.t, -1.8608, 5e-5), "{r:?}");
        assert!(close(r.df, 17.776, 5e-4), "{r:?}");
        assert!(close(r.p, 0.07939, 5e-6), "{r:?}");
    }

    #[test]
    fn paired_on_sleep_data_matches_r() {
        // R: t.test(sleep1, sleep2, paired = TRUE): t = -4.0621, df = 9, p-value = 0.002833
        let r = paired(&SLEEP_1, &SLEEP_2).unwrap();
        assert_eq!(r.kind, TestKind::Paired);
        assert!(close(r.t, -4.0621, 5e-5), "{r:?}");
        assert_eq!(r.df, 9.0);
        assert!(close(r.p, 0.002833, 5e-7), "{r:?}");
    }

    #[test]
    fn welch_on_textbook_example() {
        // Welch (1947)-style example used on Wikipedia ("Welch's t-test", example 1):
        // t = -2.46, df ≈ 25.0, p ≈ 0.021.
        let a1 = [
            27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7,
            21.4,
        ];
        let a2 = [
            27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5,
            24.4,
        ];
        let r = welch(&a1, &a2).unwrap();
        assert!(close(r.t, -2.46, 5e-3), "{r:?}");
        assert!(close(r.df, 25.0, 5e-2), "{r:?}");
        assert!(close(r.p, 0.021, 5e-4), "{r:?}");
    }

    #[test]
    fn degenerate_tests_are_none() {
        assert!(welch(&[1.0], &[2.0, 3.0]).is_none());
        assert!(welch(&[1.0, 1.0], &[2.0, 2.0]).is_none());
        assert!(
            paired(&[1.0, 2.0], &[0.0, 1.0]).is_none(),
            "constant difference"
        );
        assert!(paired(&[1.0, 2.0, 3.0], &[0.0, 1.0]).is_none());
        // One side constant, the other not: Welch is still defined.
        assert!(welch(&[1.0, 1.0], &[2.0, 3.0]).is_some());
    }
}
