//! The real `towerlab` binary driven in tmux: open on a populated store, filter, open a run,
//! see its chart, quit; and the terminal is restored afterwards (also after SIGTERM).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use app::tui::sample_store::{fill, SampleSpec};

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(cmd: &str, w: u16, h: u16) -> Tmux {
        let socket = format!("towerlab-e2e-{}-{}", std::process::id(), rand_suffix());
        let t = Tmux { socket };
        let out = t.run(&[
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            cmd,
        ]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("running tmux")
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "e2e"]).stdout).into_owned()
    }

    fn alternate_on(&self) -> bool {
        let out = self.run(&["display-message", "-p", "-t", "e2e", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let out = self.run(&["send-keys", "-t", "e2e", k]);
            assert!(out.status.success());
        }
    }

    fn literal(&self, text: &str) {
        assert!(self
            .run(&["send-keys", "-t", "e2e", "-l", text])
            .status
            .success());
    }

    /// Waits until the screen satisfies `pred`, failing with the last screen after 20 s.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn pane_pid(&self) -> u32 {
        let out = self.run(&["display-message", "-p", "-t", "e2e", "#{pane_pid}"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pane pid")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_007)
}

fn populated_store(dir: &Path) -> PathBuf {
    let db = dir.join("e2e.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = store::Store::open(&db).await.unwrap();
        fill(
            &store,
            SampleSpec {
                runs: 12,
                steps: 200,
                batch: 12,
            },
        )
        .await
        .unwrap();
        store.close().await;
    });
    db
}

/// The command tmux runs: the TUI, then the exit code and the tty modes once it has left.
fn shell_command(db: &Path) -> String {
    format!(
        "{} tui --db {}; echo EXITED:$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo; sleep 60",
        env!("CARGO_BIN_EXE_towerlab"),
        db.display()
    )
}

/// The end-to-end tests need tmux: without it they fail with the reason (a test that passes by
/// skipping would hide that the TUI was never driven). `make test` installs it.
fn require_tmux() {
    assert!(
        tmux_available(),
        "tmux is not installed, so the TUI end-to-end test cannot run: install it with \
         scripts/setup-test-tools.sh (`make test` does), or `apt-get install tmux`"
    );
}

fn assert_restored(t: &Tmux, code: &str) {
    let screen = t.wait_for("the exit line", |s| s.contains("EXITED:"));
    assert!(screen.contains(&format!("EXITED:{code}")), "{screen}");
    let modes = t.wait_for("the tty modes", |s| s.contains("icanon"));
    assert!(
        !modes.contains("-icanon") && !modes.contains("-echo"),
        "raw mode left on:\n{modes}"
    );
    assert!(!t.alternate_on(), "the alternate screen was not left");
    // Mouse capture was turned off: tmux reports no mouse mode for the pane.
    let out = t.run(&["display-message", "-p", "-t", "e2e", "#{mouse_any_flag}"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

#[test]
fn browse_filter_open_chart_quit() {
    require_tmux();
    let dir = tempfile::tempdir().unwrap();
    let db = populated_store(dir.path());
    let t = Tmux::start(&shell_command(&db), 100, 30);

    t.wait_for("the runs table", |s| s.contains("runs 12/12"));
    assert!(t.alternate_on(), "the TUI uses the alternate screen");

    t.keys(&["/"]);
    t.literal("manager=adaptive layers=12");
    t.keys(&["Enter"]);
    let screen = t.wait_for("the filtered table", |s| s.contains("runs 2/12"));
    assert!(screen.contains("layers=12 mgr=adaptive"), "{screen}");

    t.keys(&["Enter"]);
    // It opens on the key metric.
    let screen = t.wait_for("the run's chart", |s| {
        s.contains("val/acc (2/2)") && s.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c))
    });
    assert!(screen.contains("model.num_layers = 12"), "{screen}");

    t.keys(&["q"]);
    assert_restored(&t, "0");
}

#[test]
fn sigterm_restores_the_terminal() {
    require_tmux();
    let dir = tempfile::tempdir().unwrap();
    let db = populated_store(dir.path());
    let t = Tmux::start(&shell_command(&db), 80, 24);
    t.wait_for("the runs table", |s| s.contains("runs 12/12"));
    let shell = t.pane_pid();
    let out = Command::new("pkill")
        .args(["-TERM", "-P", &shell.to_string(), "-x", "towerlab"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "no towerlab child of the pane's shell"
    );
    assert_restored(&t, "0");
}

/// A terminal that goes away (tmux killed, an ssh session dropped) ends the TUI: it neither
/// spins on the dead terminal nor lingers (crossterm alone reads end-of-file forever there).
#[test]
fn a_hung_up_terminal_ends_the_tui() {
    require_tmux();
    let dir = tempfile::tempdir().unwrap();
    let db = populated_store(dir.path());
    let pid_file = dir.path().join("tui.pid");
    // `exec`: the pane's process is the TUI itself, its pid written first.
    let cmd = format!(
        "echo $$ > {}; exec {} tui --db {}",
        pid_file.display(),
        env!("CARGO_BIN_EXE_towerlab"),
        db.display()
    );
    let t = Tmux::start(&cmd, 80, 24);
    t.wait_for("the runs table", |s| s.contains("runs 12/12"));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists(), "the TUI is not running");
    // Closing the pty: tmux's server goes, the TUI's terminal with it.
    let _ = t.run(&["kill-server"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(&proc_dir) {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the TUI still runs 10 s after its terminal went away");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the process of `/proc/PID` runs (a zombie, ended but not yet reaped, does not).
fn alive(proc_dir: &Path) -> bool {
    std::fs::read_to_string(proc_dir.join("stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

#[test]
fn a_run_written_by_another_process_shows_within_a_second() {
    require_tmux();
    let dir = tempfile::tempdir().unwrap();
    let db = populated_store(dir.path());
    let t = Tmux::start(&shell_command(&db), 100, 30);
    t.wait_for("the runs table", |s| s.contains("runs 12/12"));

    // This test process is the "other process": it queues and starts a run of a new sweep.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let written = rt.block_on(async {
        let store = store::Store::open(&db).await.unwrap();
        let exp = store
            .upsert_experiment("live-sweep", "experiments/live.toml", "h")
            .await
            .unwrap();
        let run = store::NewRun {
            hash: "live0001".into(),
            cell_key: "seed=1".into(),
            axes: serde_json::json!({"seed": 1}).as_object().cloned().unwrap(),
            task: "vqa".into(),
            params: vec![],
            depends_on: None,
        };
        store.create_runs(exp.id, &[run]).await.unwrap();
        let at = Instant::now();
        store.close().await;
        at
    });
    let screen = t.wait_for("the new run", |s| s.contains("runs 13/13"));
    let took = written.elapsed();
    assert!(screen.contains("live-sweep"), "{screen}");
    assert!(
        took < Duration::from_secs(1),
        "the new run took {took:?} to show"
    );
    t.keys(&["q"]);
    assert_restored(&t, "0");
}

#[test]
fn no_arguments_in_a_terminal_opens_the_tui_on_an_empty_store() {
    require_tmux();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let cmd = format!(
        "TOWERLAB_DB={} {}; echo EXITED:$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo; sleep 60",
        db.display(),
        env!("CARGO_BIN_EXE_towerlab"),
    );
    let t = Tmux::start(&cmd, 80, 24);
    let screen = t.wait_for("the empty-store help", |s| s.contains("make demo"));
    assert!(
        screen.contains("towerlab run experiments/demo.toml"),
        "{screen}"
    );
    t.keys(&["C-c"]);
    assert_restored(&t, "0");
}

/// An experiment file of a tiny study (not in the store): `name`, synthetic data in `dir`.
fn study_file(dir: &Path, file: &str, name: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\ntask = \"vqa\"\n[data]\nroot = {:?}\nsynthetic = true\n[base]\npreset = \"tiny\"\nmax_steps = 4\n[grid]\nmanager_type = [\"SAUE\", \"AAUE\"]\nseeds = [0, 1]\n[[zip]]\nmanaged_layers_text = [2, 4]\nmanaged_layers_image = [2, 4]\n[metric]\nname = \"val/vqa/score_epoch\"\ngoal = \"maximize\"\n",
        dir.join("data")
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn tui_file_opens_the_plan_of_a_file_not_in_the_store_and_o_opens_another() {
    require_tmux();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let file = study_file(dir.path(), "my-study.toml", "my-study");
    study_file(dir.path(), "second.toml", "second-study");
    let cmd = format!(
        "cd {} && {} tui --db {} {}; echo EXITED:$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo; sleep 60",
        dir.path().display(),
        env!("CARGO_BIN_EXE_towerlab"),
        db.display(),
        file.display(),
    );
    let t = Tmux::start(&cmd, 80, 24);
    let screen = t.wait_for("the file's plan", |s| s.contains("plan · my-study · 8 new"));
    // Its cells, by the axes that vary.
    assert!(screen.contains("mlt=2 mgr=SAUE s=0"), "{screen}");
    // Back to the list, then the picker: part of a name and Enter.
    t.keys(&["Escape", "o"]);
    t.wait_for("the picker", |s| {
        s.contains("open an experiment file") && s.contains("second.toml")
    });
    t.literal("seco");
    t.keys(&["Enter"]);
    t.wait_for("the second file's plan", |s| {
        s.contains("plan · second-study · 8 new")
    });
    t.keys(&["q"]);
    assert_restored(&t, "0");
}

#[test]
fn tui_with_a_file_that_does_not_exist_is_one_error_before_the_screen() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_towerlab"))
        .args(["tui", "--db"])
        .arg(dir.path().join("t.db"))
        .arg(dir.path().join("nope.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    // The experiment file's usual error, naming the file.
    assert!(err.contains("nope.toml: cannot read the file"), "{err}");
}
