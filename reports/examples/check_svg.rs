//! Checks figure SVGs written by TowerLab: `cargo run -p reports --example check_svg -- FILE...`
//! prints, per file, everything that leaves the canvas, overlapping labels, and curves, bars,
//! legend entries or titles the figure lists but does not draw; exits 1 when any file has one.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut bad = 0;
    for path in std::env::args().skip(1) {
        let svg = std::fs::read_to_string(&path)?;
        let problems = reports::figures::verify_svg(&svg);
        if problems.is_empty() {
            println!("{path}: ok");
        } else {
            bad += 1;
            println!("{path}: {} problems", problems.len());
            for p in problems {
                println!("  {p}");
            }
        }
    }
    if bad > 0 {
        std::process::exit(1);
    }
    Ok(())
}
