//! The torture test of issue 17: the crash test's SIGKILL and restart, round
//! after round with a new random kill moment each, and everything in the
//! mix: QoS 1 and 2; MQTT 3.1.1 and 5.0 publishers, clean ones and
//! persistent ones that resume after the restart; retained messages; a
//! shared subscription; a subscriber taken over again and again while the
//! messages flow. After each round: nothing acknowledged is lost, no QoS 2
//! message arrives twice, and each publisher's messages arrive in order.
//!
//! In the test command it runs [`SHORT_ROUNDS`] rounds. `scripts/torture
//! MINUTES` runs it for that long (`STARLING_TORTURE_MINUTES`); a failure
//! prints its round's seed, which `STARLING_TORTURE_SEED=N
//! STARLING_TORTURE_ROUNDS=1` replays (the kill moment; thread scheduling
//! is not replayable).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::crash::{crash_round, Mix};

/// Rounds in the test command.
const SHORT_ROUNDS: u64 = 2;

fn env_number(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn torture_sigkill_restart_rounds_lose_and_duplicate_nothing() {
    let minutes = env_number("STARLING_TORTURE_MINUTES");
    let rounds = env_number("STARLING_TORTURE_ROUNDS").map(|r| r as u64);
    let rounds = match (minutes, rounds) {
        (_, Some(rounds)) => rounds,
        (Some(_), None) => u64::MAX,
        (None, None) => SHORT_ROUNDS,
    };
    let until = minutes.map(|m| Instant::now() + Duration::from_secs_f64(m * 60.0));
    let first_seed = env_number("STARLING_TORTURE_SEED")
        .map(|s| s as u64)
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let mut done = 0;
    while done < rounds && until.map_or(true, |at| Instant::now() < at) {
        let seed = first_seed.wrapping_add(done);
        let mut rng = StdRng::seed_from_u64(seed);
        let kill_after = Duration::from_millis(rng.random_range(50..=1500));
        let mix = Mix {
            shared: true,
            takeover: true,
            v5_resume: rng.random_bool(0.5),
        };
        eprintln!(
            "torture round {}: seed {seed}, SIGKILL after {kill_after:?}, {mix:?} \
             (replay: STARLING_TORTURE_SEED={seed} STARLING_TORTURE_ROUNDS=1)",
            done + 1
        );
        crash_round(&runtime, &format!("torture-{}", done + 1), kill_after, mix);
        done += 1;
    }
    eprintln!(
        "torture: {done} rounds in {:.1} minutes: nothing acknowledged lost, no QoS 2 duplicate, \
         order kept",
        started.elapsed().as_secs_f64() / 60.0
    );
    assert!(done > 0, "no round ran");
}
