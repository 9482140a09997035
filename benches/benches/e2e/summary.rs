//! The one table at the end of a run: bulk, latency, memory and scale for
//! every system measured in this run, with the ratio of wrapguard to
//! wireguard-go + kernel TCP from the same run. Seccomp figures come from
//! the modes section; a cell is `–` where the figure does not apply, and
//! rows of sections that did not run are left out.

use crate::bulk::{self, Test};
use crate::latency;
use crate::measure::uptime;
use crate::modes;
use crate::scale;
use crate::table;
use crate::topology::Via;

/// The columns, in order.
const SYSTEMS: [Via; 5] = [
    Via::Wrapguard,
    Via::WireguardGo,
    Via::Onetun,
    Via::Pair,
    Via::Seccomp,
];

/// What each section of this run measured (`None`: not run).
pub struct Sections {
    /// Bulk throughput.
    pub bulk: Option<bulk::Report>,
    /// Connect + request/response.
    pub latency: Option<latency::Report>,
    /// Held connections.
    pub scale: Option<scale::Report>,
    /// Seccomp against shim mode.
    pub modes: Option<modes::Report>,
}

/// One row's figure per system.
type Cell<'a> = Box<dyn Fn(Via) -> Option<f64> + 'a>;

impl Sections {
    /// Prints the summary table.
    pub fn print(&self) {
        let (bulk, latency, modes) = (
            self.bulk.as_ref(),
            self.latency.as_ref(),
            self.modes.as_ref(),
        );
        // Shim-mode wrapguard from its own section, else from the modes
        // section (which measures it too).
        let from_modes =
            |via: Via, own: bool| via == Via::Seccomp || (via == Via::Wrapguard && !own);
        let throughput = |test: Test| -> Cell<'_> {
            Box::new(move |via| match from_modes(via, bulk.is_some()) {
                true => modes?.median(test, via, false),
                false => bulk?.median(test, via),
            })
        };
        let rr = |i: usize| -> Cell<'_> {
            Box::new(move |via| match from_modes(via, latency.is_some()) {
                true => modes?.rr(via).map(|v| v[i]),
                false => latency?.get(via).map(|v| v[i]),
            })
        };
        let cpu = |test: Test| -> Cell<'_> {
            Box::new(move |via| match from_modes(via, bulk.is_some()) {
                true => modes?.median(test, via, true),
                false => bulk?.cpu_median(test, via),
            })
        };
        // Client side: only the bulk section measures it (not seccomp).
        let side =
            |test: Test| -> Cell<'_> { Box::new(move |via| bulk?.side_cpu_median(test, via)) };
        let peak: Cell<'_> = Box::new(move |via| match from_modes(via, bulk.is_some()) {
            true => modes?.peak_rss_mib(via),
            false => bulk?.peak_rss_mib(via),
        });
        let scale_fig = self.scale.as_ref().and_then(|s| s.figures());
        let held = scale_fig.map_or(0, |f| f.2);
        let idle: Cell<'_> = Box::new(move |via| (via == Via::Wrapguard).then_some(scale_fig?.0));
        let per_conn: Cell<'_> =
            Box::new(move |via| (via == Via::Wrapguard).then_some(scale_fig?.1));
        let rows: Vec<(String, usize, Cell<'_>)> = vec![
            ("iperf3 upload, Mbit/s".into(), 0, throughput(Test::Upload)),
            (
                "iperf3 download, Mbit/s".into(),
                0,
                throughput(Test::Download),
            ),
            ("curl 256 MB, Mbit/s".into(), 0, throughput(Test::Curl)),
            ("connect+RR p50, µs".into(), 0, rr(0)),
            ("connect+RR p99, µs".into(), 0, rr(1)),
            (
                "wrapguard process CPU s/GB, upload".into(),
                2,
                cpu(Test::Upload),
            ),
            (
                "wrapguard process CPU s/GB, download".into(),
                2,
                cpu(Test::Download),
            ),
            ("client-side CPU s/GB, upload".into(), 2, side(Test::Upload)),
            (
                "client-side CPU s/GB, download".into(),
                2,
                side(Test::Download),
            ),
            ("peak RSS in bulk, MiB".into(), 1, peak),
            ("idle RSS, MiB".into(), 1, idle),
            (format!("KiB per held conn. ({held})"), 1, per_conn),
        ];
        let body: Vec<Vec<String>> = rows
            .iter()
            // Rows of sections that did not run are left out.
            .filter(|(_, _, f)| SYSTEMS.iter().any(|&v| f(v).is_some()))
            .map(|(label, prec, f)| {
                let mut row = vec![label.clone()];
                row.extend(
                    SYSTEMS
                        .iter()
                        .map(|&v| f(v).map_or("–".into(), |x| format!("{x:.p$}", p = *prec))),
                );
                row.push(match (f(Via::Wrapguard), f(Via::WireguardGo)) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                    _ => "–".into(),
                });
                row
            })
            .collect();
        println!("\n## Summary of this run ({})", uptime());
        let mut header = vec!["measure"];
        header.extend(SYSTEMS.iter().map(|v| v.label()));
        header.push("wrapguard / wg-go");
        table::print(&header, &body);
        for test in [Test::Upload, Test::Download] {
            let own = bulk.and_then(|b| b.cpu_median(test, Via::Wrapguard));
            let theirs = bulk.and_then(|b| b.side_cpu_median(test, Via::WireguardGo));
            if let (Some(a), Some(b)) = (own, theirs) {
                println!(
                    "- {}: wrapguard process {a:.2} s/GB / wireguard-go client side {b:.2} s/GB = {:.2}×",
                    test.label(),
                    a / b
                );
            }
        }
        println!(
            "- client side: the machine's busy CPU during a run less the servers' namespace \
             (client program, tunnel process, kernel networking)"
        );
        println!(
            "- medians of the rounds; seccomp (and, without its own sections, wrapguard) from the modes section; \
             RSS of the tunnel's own process (wireguard-go's excludes the kernel's TCP)"
        );
    }
}
