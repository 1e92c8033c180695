//! The bundled sample "legacy EHR" for the fictional Riverside Family Clinic.
//!
//! `ward demo` runs it on loopback behind ward, and the end-to-end tests use it as the real
//! upstream. Besides the pages a person clicks through, it has endpoints that let tests see
//! exactly what reached the upstream (`/debug/headers`, `/echo/…`), that stress the proxy
//! (`/stream`, `/slow`, `/ws/notifications`), that behave like a badly configured legacy app
//! (`/legacy/login` leaks its internal address), and that stand in for an imaging archive
//! (`/wado`, `/dicomweb/…`: DICOM files and DICOMweb answers) and for an app that asks for
//! its own HTTP Basic login (`/challenge`). All data is fictional.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The one response body type: any handler's body, boxed.
type Body = BoxBody<Bytes, io::Error>;
type Resp = Response<Body>;

const PRACTICE: &str = "Riverside Family Clinic";
/// Chunk size for `/stream`: big enough to be fast, small enough to never matter for memory.
const STREAM_CHUNK: usize = 64 * 1024;
const STREAM_DEFAULT: u64 = 1024 * 1024;
const STREAM_MAX: u64 = 1 << 40;
const SLOW_DEFAULT_MS: u64 = 1000;
const SLOW_MAX_MS: u64 = 120_000;
const NOTIFY_EVERY: Duration = Duration::from_secs(15);
/// Response header carrying the request target as received, so a test can see what path and
/// query reached the upstream for any request, not only `/debug/headers` and `/echo/…`.
const TARGET_HEADER: &str = "x-upstream-target";

/// Shared by every `/stream` chunk so producing a chunk never allocates.
static LETTERS: [u8; STREAM_CHUNK] = [b'a'; STREAM_CHUNK];

/// A 1x1 opaque teal PNG (signature, IHDR, IDAT, IEND with correct CRCs).
static LOGO_PNG: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, // signature
    0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, // IHDR, 13 bytes
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, // 1 x 1
    0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, // 8-bit RGB, CRC
    0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, // IDAT, 12 bytes
    0x78, 0xda, 0x63, 0xd0, 0x8f, 0x4d, 0x02, 0x00, 0x01, 0xad, 0x00, 0xef, // zlib data
    0x10, 0x7b, 0x2b, 0x0b, // CRC
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82, // IEND
];

// ---------------------------------------------------------------------------------------------
// Sample data (fictional).

struct Patient {
    id: &'static str,
    name: &'static str,
    dob: &'static str,
    mrn: &'static str,
    allergies: &'static [&'static str],
    problems: &'static [&'static str],
    medications: &'static [&'static str],
    insurance: &'static str,
    claims: &'static [Claim],
}

struct Claim {
    number: &'static str,
    date: &'static str,
    code: &'static str,
    description: &'static str,
    cents: u64,
    status: &'static str,
}

static PATIENTS: [Patient; 6] = [
    Patient {
        id: "1001",
        name: "Margaret Ellison",
        dob: "1948-03-12",
        mrn: "RFC-001001",
        allergies: &["Penicillin (hives)"],
        problems: &["Essential hypertension", "Type 2 diabetes mellitus"],
        medications: &["Lisinopril 10 mg daily", "Metformin 500 mg twice daily"],
        insurance: "Medicare Part B (sample) #SMPL-4471-A",
        claims: &[
            Claim {
                number: "CLM-24-0001",
                date: "2024-02-14",
                code: "99214",
                description: "Office visit, established patient",
                cents: 14_500,
                status: "Paid",
            },
            Claim {
                number: "CLM-24-0007",
                date: "2024-05-20",
                code: "83036",
                description: "Hemoglobin A1c",
                cents: 2_350,
                status: "Pending",
            },
        ],
    },
    Patient {
        id: "1002",
        name: "Daniel Okafor",
        dob: "1979-11-02",
        mrn: "RFC-001002",
        allergies: &[],
        problems: &["Seasonal allergic rhinitis", "Low back pain"],
        medications: &["Loratadine 10 mg daily as needed"],
        insurance: "Bluewater Health Plan (sample) #BW-220918",
        claims: &[Claim {
            number: "CLM-24-0002",
            date: "2024-03-01",
            code: "99213",
            description: "Office visit, established patient",
            cents: 9_800,
            status: "Paid",
        }],
    },
    Patient {
        id: "1003",
        name: "Rosa Delgado",
        dob: "1990-06-25",
        mrn: "RFC-001003",
        allergies: &["Sulfa drugs (rash)", "Latex"],
        problems: &["Asthma, mild persistent"],
        medications: &[
            "Albuterol inhaler as needed",
            "Fluticasone inhaler 110 mcg twice daily",
        ],
        insurance: "Evergreen Mutual (sample) #EVM-77310",
        claims: &[
            Claim {
                number: "CLM-24-0003",
                date: "2024-03-18",
                code: "94010",
                description: "Spirometry",
                cents: 6_200,
                status: "Denied",
            },
            Claim {
                number: "CLM-24-0008",
                date: "2024-06-03",
                code: "99213",
                description: "Office visit, established patient",
                cents: 9_800,
                status: "Pending",
            },
        ],
    },
    Patient {
        id: "1004",
        name: "Thomas Whitfield",
        dob: "1962-01-30",
        mrn: "RFC-001004",
        allergies: &["Codeine (nausea)"],
        problems: &["Hyperlipidemia", "Gout"],
        medications: &["Atorvastatin 20 mg nightly", "Allopurinol 100 mg daily"],
        insurance: "Bluewater Health Plan (sample) #BW-118204",
        claims: &[Claim {
            number: "CLM-24-0004",
            date: "2024-04-09",
            code: "80061",
            description: "Lipid panel",
            cents: 3_100,
            status: "Paid",
        }],
    },
    Patient {
        id: "1005",
        name: "Aiko Tanaka",
        dob: "2011-09-14",
        mrn: "RFC-001005",
        allergies: &["Peanuts (anaphylaxis)"],
        problems: &["Food allergy", "Well child care"],
        medications: &["Epinephrine auto-injector 0.3 mg as needed"],
        insurance: "State Medicaid (sample) #MCD-5502913",
        claims: &[Claim {
            number: "CLM-24-0005",
            date: "2024-04-22",
            code: "99393",
            description: "Preventive visit, age 5-11",
            cents: 16_000,
            status: "Paid",
        }],
    },
    Patient {
        id: "1006",
        name: "Samuel Brooks",
        dob: "1985-12-08",
        mrn: "RFC-001006",
        allergies: &[],
        problems: &["Major depressive disorder, single episode", "Insomnia"],
        medications: &["Sertraline 50 mg daily"],
        insurance: "Evergreen Mutual (sample) #EVM-90125",
        claims: &[
            Claim {
                number: "CLM-24-0006",
                date: "2024-05-02",
                code: "99214",
                description: "Office visit, established patient",
                cents: 14_500,
                status: "Paid",
            },
            Claim {
                number: "CLM-24-0009",
                date: "2024-06-11",
                code: "96127",
                description: "Brief emotional/behavioral assessment",
                cents: 1_800,
                status: "Pending",
            },
        ],
    },
];

fn find_patient(id: &str) -> Option<&'static Patient> {
    PATIENTS.iter().find(|p| p.id == id)
}

// ---------------------------------------------------------------------------------------------
// Server.

/// Serves the sample EHR on `listener` until the returned future is dropped.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            // EINVAL: the socket is not listening; retrying can never succeed.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Err(e),
            Err(e) => {
                // Aborted handshakes and fd exhaustion are transient; back off a little so a
                // full fd table does not turn into a busy loop.
                tracing::debug!(error = %e, "sample EHR: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small pages and WebSocket frames should not wait for Nagle.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                // A timer makes hyper's default 30 s header-read timeout take effect.
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "sample EHR: connection error");
            }
        });
    }
}

async fn handle(req: Request<Incoming>) -> Result<Resp, Infallible> {
    let target = req.uri().to_string();
    tracing::debug!(method = %req.method(), %target, "sample EHR request");
    let mut resp = route(req).await;
    if let Ok(v) = HeaderValue::from_str(&target) {
        resp.headers_mut()
            .insert(HeaderName::from_static(TARGET_HEADER), v);
    }
    Ok(resp)
}

/// Dispatches on method and path; anything unmatched is a 404 page.
async fn route(req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    if path.starts_with("/echo/") {
        return echo(req).await;
    }
    // HEAD is answered like GET; hyper drops the body.
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    match (get, segments.as_slice()) {
        (true, [""]) => patient_list(&req),
        (true, ["patients", id, "chart"]) => chart(&req, id),
        (true, ["patients", id, "summary.pdf"]) => summary_pdf(&req, id),
        (true, ["billing"]) => billing(&req),
        (true, ["reports"]) => reports(&req),
        (true, ["reports", "patients.csv"]) => patients_csv(),
        (true, ["notifications"]) => notifications(&req),
        (true, ["ws", "notifications"]) if req.method() == Method::GET => ws_notifications(req),
        (true, ["debug", "headers"]) => debug_headers(&req),
        (true, ["stream"]) => stream(&req),
        (true, ["slow"]) => slow(&req).await,
        (true, ["legacy", "login"]) => legacy_login(&req),
        (true, ["logo.png"]) => logo(),
        (true, ["files", _]) => custom_file(&req),
        (true, ["api", "patients", id]) => patient_json(id),
        (true, ["settings", "forwarding"]) => forwarding_page(&req),
        (true, ["wado"]) => wado_uri(&req),
        (true, ["dicomweb", "studies"]) => qido_studies(&req),
        (true, ["dicomweb", "studies", study]) => wado_rs_study(study),
        (true, ["dicomweb", "studies", _, "rendered"]) => rendered_jpeg(),
        (
            true,
            [
                "dicomweb",
                "studies",
                _,
                "series",
                _,
                "instances",
                _,
                "frames",
                _,
            ],
        ) => wado_rs_frames(),
        (true, ["challenge"]) => challenge(),
        (false, ["settings", "forwarding"]) if req.method() == Method::POST => {
            json(StatusCode::OK, &serde_json::json!({"saved": true}))
        }
        _ => not_found(&req),
    }
}

// ---------------------------------------------------------------------------------------------
// Pages.

fn patient_list(req: &Request<Incoming>) -> Resp {
    let mut body = String::from(
        "<h1>Patients</h1>\n<table>\n<tr><th>MRN</th><th>Name</th><th>Date of birth</th>\
         <th>Insurance</th><th></th></tr>\n",
    );
    for p in &PATIENTS {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td><a href=\"/patients/{}/chart\">{}</a></td><td>{}</td><td>{}</td>\
             <td><a href=\"/patients/{}/chart\">Open chart</a></td></tr>",
            esc(p.mrn),
            esc(p.id),
            esc(p.name),
            esc(p.dob),
            esc(p.insurance),
            esc(p.id),
        );
    }
    body.push_str("</table>\n");
    html(StatusCode::OK, req, "Patients", &body)
}

fn chart(req: &Request<Incoming>, id: &str) -> Resp {
    let Some(p) = find_patient(id) else {
        return not_found(req);
    };
    let mut body = format!(
        "<h1>Chart: {name}</h1>\n<table class=\"facts\">\n\
         <tr><th>MRN</th><td>{mrn}</td></tr>\n<tr><th>Date of birth</th><td>{dob}</td></tr>\n\
         <tr><th>Insurance</th><td>{ins}</td></tr>\n</table>\n",
        name = esc(p.name),
        mrn = esc(p.mrn),
        dob = esc(p.dob),
        ins = esc(p.insurance),
    );
    for (title, items) in [
        ("Allergies", p.allergies),
        ("Problems", p.problems),
        ("Medications", p.medications),
    ] {
        let _ = writeln!(body, "<h2>{title}</h2>\n<ul>");
        if items.is_empty() {
            body.push_str("<li><em>None recorded</em></li>\n");
        }
        for item in items {
            let _ = writeln!(body, "<li>{}</li>", esc(item));
        }
        body.push_str("</ul>\n");
    }
    body.push_str("<h2>Claims</h2>\n");
    push_claims_table(&mut body, p.claims.iter().map(|c| (p, c)));
    let _ = writeln!(
        body,
        "<p><a href=\"/patients/{id}/summary.pdf\">Download summary (PDF)</a> | \
         <a href=\"/\">Back to patient list</a></p>",
        id = esc(p.id),
    );
    html(StatusCode::OK, req, &format!("Chart: {}", p.name), &body)
}

fn billing(req: &Request<Incoming>) -> Resp {
    let mut body = String::from("<h1>Billing</h1>\n<h2>Claims</h2>\n");
    push_claims_table(
        &mut body,
        PATIENTS
            .iter()
            .flat_map(|p| p.claims.iter().map(move |c| (p, c))),
    );
    let total: u64 = PATIENTS
        .iter()
        .flat_map(|p| p.claims.iter())
        .map(|c| c.cents)
        .sum();
    let _ = writeln!(
        body,
        "<p>Total billed: <strong>{}</strong></p>\n\
         <p><a href=\"/reports/patients.csv\">Export patient list (CSV)</a></p>",
        money(total)
    );
    html(StatusCode::OK, req, "Billing", &body)
}

fn push_claims_table<'a>(out: &mut String, claims: impl Iterator<Item = (&'a Patient, &'a Claim)>) {
    out.push_str(
        "<table>\n<tr><th>Claim</th><th>Patient</th><th>Date of service</th><th>Code</th>\
         <th>Description</th><th>Amount</th><th>Status</th></tr>\n",
    );
    for (p, c) in claims {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><a href=\"/patients/{}/chart\">{}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"num\">{}</td><td class=\"status-{}\">{}</td></tr>",
            esc(c.number),
            esc(p.id),
            esc(p.name),
            esc(c.date),
            esc(c.code),
            esc(c.description),
            money(c.cents),
            esc(&c.status.to_ascii_lowercase()),
            esc(c.status),
        );
    }
    out.push_str("</table>\n");
}

fn reports(req: &Request<Incoming>) -> Resp {
    let mut body = String::from(
        "<h1>Reports</h1>\n<h2>Exports</h2>\n<ul>\n\
         <li><a href=\"/reports/patients.csv\">All patients (CSV)</a></li>\n</ul>\n\
         <h2>Patient summaries (PDF)</h2>\n<ul>\n",
    );
    for p in &PATIENTS {
        let _ = writeln!(
            body,
            "<li><a href=\"/patients/{id}/summary.pdf\">{name} ({mrn})</a></li>",
            id = esc(p.id),
            name = esc(p.name),
            mrn = esc(p.mrn),
        );
    }
    body.push_str("</ul>\n");
    html(StatusCode::OK, req, "Reports", &body)
}

fn notifications(req: &Request<Incoming>) -> Resp {
    // Messages are added with textContent, so nothing received is ever parsed as HTML.
    let body = r#"<h1>Notifications</h1>
<p>Live feed: <span id="ws-status">connecting…</span></p>
<ul id="messages"></ul>
<form id="send-form">
<input id="message" type="text" size="40" placeholder="Message to send" autocomplete="off">
<button id="send-button" type="submit">Send</button>
</form>
<script>
(function () {
  var list = document.getElementById('messages');
  var status = document.getElementById('ws-status');
  function add(text) {
    var li = document.createElement('li');
    li.textContent = text;
    list.appendChild(li);
  }
  var ws = new WebSocket((location.protocol==='https:'?'wss://':'ws://')+location.host+'/ws/notifications');
  ws.onopen = function () { status.textContent = 'connected'; };
  ws.onclose = function (e) { status.textContent = 'closed (' + e.code + ')'; };
  ws.onerror = function () { status.textContent = 'error'; };
  ws.onmessage = function (e) { add(typeof e.data === 'string' ? e.data : '[binary message]'); };
  document.getElementById('send-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var input = document.getElementById('message');
    if (input.value && ws.readyState === WebSocket.OPEN) {
      ws.send(input.value);
      input.value = '';
    }
  });
})();
</script>
"#;
    html(StatusCode::OK, req, "Notifications", body)
}

fn not_found(req: &Request<Incoming>) -> Resp {
    let body = format!(
        "<h1>Page not found</h1>\n<p>There is no page at <code>{}</code>.</p>\n\
         <p><a href=\"/\">Back to patient list</a></p>\n",
        esc(req.uri().path())
    );
    html(StatusCode::NOT_FOUND, req, "Not found", &body)
}

/// Wraps `content` in the shared header, nav and footer.
fn html(status: StatusCode, req: &Request<Incoming>, title: &str, content: &str) -> Resp {
    let identity = match header_text(req, "x-ward-user") {
        Some(user) => format!(
            "Signed in through ward as <strong>{}</strong> (roles: {})",
            esc(&user),
            esc(&header_text(req, "x-ward-roles").unwrap_or_default()),
        ),
        None => "No ward identity".to_owned(),
    };
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - {PRACTICE} EHR</title>
<style>
body {{ font-family: Verdana, Arial, sans-serif; font-size: 13px; margin: 0; background: #eef2f3; color: #222; }}
#top {{ background: #2f5d62; color: #fff; padding: 8px 12px; }}
#top img {{ width: 16px; height: 16px; vertical-align: middle; border: 1px solid #fff; }}
#top .practice {{ font-size: 18px; font-weight: bold; }}
#top .who {{ float: right; font-size: 11px; padding-top: 4px; }}
#nav {{ background: #5e8b7e; padding: 4px 12px; }}
#nav a {{ color: #fff; margin-right: 14px; text-decoration: none; font-weight: bold; }}
#nav a:hover {{ text-decoration: underline; }}
#main {{ background: #fff; margin: 12px; padding: 8px 16px; border: 1px solid #b7c4c7; }}
table {{ border-collapse: collapse; margin: 6px 0; }}
th, td {{ border: 1px solid #b7c4c7; padding: 3px 8px; text-align: left; }}
th {{ background: #dfe8ea; }}
td.num {{ text-align: right; }}
.status-denied {{ color: #a00; }}
h1 {{ font-size: 18px; color: #2f5d62; }}
h2 {{ font-size: 14px; color: #2f5d62; }}
#footer {{ font-size: 11px; color: #666; margin: 0 12px 12px; }}
</style>
</head>
<body>
<div id="top"><span class="who">{identity}</span><img src="/logo.png" alt=""> <span class="practice">{PRACTICE}</span> &middot; Electronic Health Record</div>
<div id="nav"><a href="/">Patients</a><a href="/billing">Billing</a><a href="/reports">Reports</a><a href="/notifications">Notifications</a><a href="/debug/headers">Headers</a></div>
<div id="main">
{content}</div>
<div id="footer">Sample data — not real patients. {PRACTICE} is fictional.</div>
</body>
</html>
"#,
        title = esc(title),
    );
    let mut resp = Response::new(full(page));
    *resp.status_mut() = status;
    set(&mut resp, header::CONTENT_TYPE, "text/html; charset=utf-8");
    resp
}

// ---------------------------------------------------------------------------------------------
// Exports.

fn summary_pdf(req: &Request<Incoming>, id: &str) -> Resp {
    let Some(p) = find_patient(id) else {
        return not_found(req);
    };
    let mut lines = vec![
        format!("{PRACTICE} - Patient summary"),
        String::new(),
        format!("Name: {}", p.name),
        format!("Date of birth: {}", p.dob),
        format!("MRN: {}", p.mrn),
        format!("Insurance: {}", p.insurance),
        format!("Allergies: {}", list_or_none(p.allergies)),
        format!("Problems: {}", list_or_none(p.problems)),
        format!("Medications: {}", list_or_none(p.medications)),
        String::new(),
    ];
    lines.extend(p.claims.iter().map(|c| {
        format!(
            "Claim {} {} {} {} {}",
            c.number,
            c.date,
            c.code,
            money(c.cents),
            c.status
        )
    }));
    lines.push(String::new());
    lines.push("Sample data - not real patients.".to_owned());
    let mut resp = Response::new(full(pdf(&lines)));
    set(&mut resp, header::CONTENT_TYPE, "application/pdf");
    set(
        &mut resp,
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"summary-{}.pdf\"", p.id),
    );
    resp
}

/// Builds a one-page PDF 1.4 showing `lines` in Helvetica, with a correct xref table.
fn pdf(lines: &[String]) -> Vec<u8> {
    let mut text = String::from("BT\n/F1 11 Tf\n14 TL\n72 740 Td\n");
    for line in lines {
        text.push('(');
        for ch in line.chars() {
            match ch {
                '(' | ')' | '\\' => {
                    text.push('\\');
                    text.push(ch);
                }
                ' '..='~' => text.push(ch),
                // The standard font's encoding is not Unicode; keep the file plain ASCII.
                _ => text.push('?'),
            }
        }
        text.push_str(") Tj T*\n");
    }
    text.push_str("ET\n");

    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
            .to_owned(),
        format!("<< /Length {} >>\nstream\n{text}endstream", text.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    // The binary comment tells transfer tools the file is not text.
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{obj}\nendobj\n", i + 1).as_bytes());
    }
    let xref_at = out.len();
    let mut xref = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for off in offsets {
        // Each entry is exactly 20 bytes, including the two-byte end of line.
        let _ = writeln!(xref, "{off:010} 00000 n ");
    }
    let _ = write!(
        xref,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF",
        objects.len() + 1
    );
    out.extend_from_slice(xref.as_bytes());
    out
}

fn patients_csv() -> Resp {
    let mut resp = Response::new(full(patients_csv_text(&PATIENTS)));
    set(&mut resp, header::CONTENT_TYPE, "text/csv; charset=utf-8");
    set(
        &mut resp,
        header::CONTENT_DISPOSITION,
        "attachment; filename=\"patients.csv\"",
    );
    resp
}

/// The patient list as CSV, through ward's one CSV writer (no cell reads as a formula).
fn patients_csv_text(patients: &[Patient]) -> String {
    let mut csv =
        String::from("id,mrn,name,dob,allergies,problems,medications,insurance,claims\r\n");
    for p in patients {
        let claims: Vec<&str> = p.claims.iter().map(|c| c.number).collect();
        let fields = [
            p.id.to_owned(),
            p.mrn.to_owned(),
            p.name.to_owned(),
            p.dob.to_owned(),
            p.allergies.join("; "),
            p.problems.join("; "),
            p.medications.join("; "),
            p.insurance.to_owned(),
            claims.join("; "),
        ];
        csv.push_str(&crate::csv::row(&fields));
        csv.push_str("\r\n");
    }
    csv
}

fn logo() -> Resp {
    let mut resp = Response::new(full(Bytes::from_static(&LOGO_PNG)));
    set(&mut resp, header::CONTENT_TYPE, "image/png");
    resp
}

// ---------------------------------------------------------------------------------------------
// Test and stress endpoints.

fn debug_headers(req: &Request<Incoming>) -> Resp {
    json(StatusCode::OK, &request_json(req, None))
}

/// Reflects any method under `/echo/`, counting the body as it streams past.
async fn echo(req: Request<Incoming>) -> Resp {
    let (parts, mut body) = req.into_parts();
    let mut len: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    len += data.len() as u64;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "sample EHR: echo body failed");
                return plain(StatusCode::BAD_REQUEST, "request body failed\n");
            }
        }
    }
    let req = Request::from_parts(parts, ());
    json(StatusCode::OK, &request_json(&req, Some(len)))
}

/// The request as received: method, raw target, version and headers in order.
fn request_json<B>(req: &Request<B>, body_len: Option<u64>) -> serde_json::Value {
    // HeaderMap keeps first-seen order, grouping repeats of a name together.
    let headers: Vec<serde_json::Value> = req
        .headers()
        .iter()
        .map(|(name, value)| {
            serde_json::json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())])
        })
        .collect();
    let mut v = serde_json::json!({
        "method": req.method().as_str(),
        "target": req.uri().to_string(),
        "version": format!("{:?}", req.version()),
        "headers": headers,
    });
    if let (Some(len), Some(obj)) = (body_len, v.as_object_mut()) {
        obj.insert("body_len".to_owned(), len.into());
    }
    v
}

fn stream(req: &Request<Incoming>) -> Resp {
    let n = match query_param(req, "bytes") {
        None => STREAM_DEFAULT,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n <= STREAM_MAX => n,
            _ => return plain(StatusCode::BAD_REQUEST, "bytes must be 0..=2^40\n"),
        },
    };
    let mut resp = Response::new(
        Letters {
            remaining: n,
            exact: true,
        }
        .boxed(),
    );
    set(&mut resp, header::CONTENT_TYPE, "text/plain");
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    resp
}

/// A body of `remaining` letters `a`, produced one shared chunk at a time.
struct Letters {
    remaining: u64,
    /// Whether the length is announced (Content-Length) or left to chunked encoding.
    exact: bool,
}

impl hyper::body::Body for Letters {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(STREAM_CHUNK as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(
            Bytes::from_static(&LETTERS).slice(..n),
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

/// A response shaped by the query, for export tests: `type`, `disposition`,
/// `encoding` (sets Content-Encoding only), `bytes`, `chunked=1` (no length).
fn custom_file(req: &Request<Incoming>) -> Resp {
    let n = query_param(req, "bytes")
        .and_then(|b| b.parse::<u64>().ok())
        .unwrap_or(1000)
        .min(STREAM_MAX);
    let chunked = query_param(req, "chunked") == Some("1");
    let mut resp = Response::new(
        Letters {
            remaining: n,
            exact: !chunked,
        }
        .boxed(),
    );
    let decode = |v: &str| {
        v.replace('+', " ")
            .replace("%3B", ";")
            .replace("%3D", "=")
            .replace("%2F", "/")
            .replace("%22", "\"")
            .replace("%27", "'")
            .replace("%2B", "+")
            .replace("%25", "%")
    };
    for (key, name) in [
        ("type", header::CONTENT_TYPE),
        ("disposition", header::CONTENT_DISPOSITION),
        ("encoding", header::CONTENT_ENCODING),
    ] {
        if let Some(v) = query_param(req, key)
            && let Ok(v) = HeaderValue::from_str(&decode(v))
        {
            resp.headers_mut().insert(name, v);
        }
    }
    if !chunked {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// A small imaging archive stand-in (DICOM and DICOMweb), for export tests.

/// The study the stand-in archive holds.
const STUDY_UID: &str = "1.2.826.0.1.3680043.8.498.1";
/// Boundary of the stand-in's multipart answers.
const DICOM_BOUNDARY: &str = "dicom-part-boundary";

/// A tiny DICOM Part 10 file: the 128-byte preamble, `DICM`, and the patient's name
/// (as a real instance carries it), which a test looks for to see whether it leaked.
fn dicom_instance() -> Vec<u8> {
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend_from_slice(b"\x10\x00\x10\x00PN\x10\x00ELLISON^MARGARET");
    out
}

/// Wraps `part` as a one-part `multipart/related` body with `part_type`.
fn multipart(part_type: &str, part: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(
        format!("--{DICOM_BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(part);
    out.extend_from_slice(format!("\r\n--{DICOM_BOUNDARY}--\r\n").as_bytes());
    out
}

fn bytes_as(content_type: &str, body: Vec<u8>) -> Resp {
    let mut resp = Response::new(full(body));
    set(&mut resp, header::CONTENT_TYPE, content_type);
    resp
}

/// WADO-URI (`/wado?requestType=WADO&…&contentType=application/dicom`): the
/// instance itself when asked for DICOM, otherwise a rendered JPEG, as archives do.
fn wado_uri(req: &Request<Incoming>) -> Resp {
    if query_param(req, "requestType") != Some("WADO") {
        return plain(StatusCode::BAD_REQUEST, "requestType=WADO is required\n");
    }
    let wanted = query_param(req, "contentType")
        .unwrap_or("image/jpeg")
        .replace("%2F", "/")
        .replace("%2f", "/");
    if wanted == "application/dicom" {
        bytes_as("application/dicom", dicom_instance())
    } else {
        rendered_jpeg()
    }
}

/// QIDO-RS study search: DICOM JSON, with each study's retrieve URL built the
/// way DICOMweb servers build it, from `Forwarded` (else `Host` and plain http).
fn qido_studies(req: &Request<Incoming>) -> Resp {
    let forwarded = header_text(req, "forwarded").unwrap_or_default();
    let part = |key: &str| {
        forwarded.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            k.eq_ignore_ascii_case(key)
                .then(|| v.trim_matches('"').to_string())
        })
    };
    let proto = part("proto").unwrap_or_else(|| "http".into());
    let host = part("host")
        .or_else(|| header_text(req, "host"))
        .unwrap_or_default();
    let body = serde_json::json!([{
        "0020000D": {"vr": "UI", "Value": [STUDY_UID]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "ELLISON^MARGARET"}]},
        "00081190": {"vr": "UR", "Value": [format!("{proto}://{host}/dicomweb/studies/{STUDY_UID}")]},
    }]);
    let mut resp = Response::new(full(body.to_string()));
    set(&mut resp, header::CONTENT_TYPE, "application/dicom+json");
    resp
}

/// WADO-RS study retrieval: the instances as `multipart/related; type="application/dicom"`.
fn wado_rs_study(study: &str) -> Resp {
    if study != STUDY_UID {
        return plain(StatusCode::NOT_FOUND, "no such study\n");
    }
    bytes_as(
        &format!("multipart/related; type=\"application/dicom\"; boundary={DICOM_BOUNDARY}"),
        multipart("application/dicom", &dicom_instance()),
    )
}

/// WADO-RS frames (bulk pixel data), with the `/` of the type unquoted, as
/// several archives send it.
fn wado_rs_frames() -> Resp {
    bytes_as(
        &format!(
            "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1; boundary={DICOM_BOUNDARY}"
        ),
        multipart("application/octet-stream", b"ELLISON^MARGARET pixel data"),
    )
}

/// A rendered image (a picture on screen, not the study): the smallest JPEG markers.
fn rendered_jpeg() -> Resp {
    bytes_as("image/jpeg", vec![0xff, 0xd8, 0xff, 0xd9])
}

/// An app page behind HTTP Basic that always asks for credentials.
fn challenge() -> Resp {
    let mut resp = plain(StatusCode::UNAUTHORIZED, "sign in to the app\n");
    set(
        &mut resp,
        header::WWW_AUTHENTICATE,
        "Basic realm=\"Imaging archive\"",
    );
    resp
}

/// A patient record as JSON, with the fields a vendor should not see.
fn patient_json(id: &str) -> Resp {
    json(
        StatusCode::OK,
        &serde_json::json!({
            "patient": {
                "id": id,
                "name": "Margaret Ellison",
                "ssn": "000-12-3456",
                "insurance": { "plan": "Riverside Health Plan", "memberId": "RHP-99812" }
            },
            "visits": [ { "date": "2026-10-01", "ssn": "000-12-3456" } ]
        }),
    )
}

/// An e-mail auto-forward setting: where a legacy app would send patient data.
fn forwarding_page(req: &Request<Incoming>) -> Resp {
    html(
        StatusCode::OK,
        req,
        "Forwarding settings",
        "<h1>Forwarding settings</h1><form method=\"post\"><label>Forward new results to <input name=\"forward_to\"></label> <button>Save</button></form>",
    )
}

async fn slow(req: &Request<Incoming>) -> Resp {
    let ms = match query_param(req, "ms") {
        None => SLOW_DEFAULT_MS,
        Some(s) => match s.parse::<u64>() {
            Ok(ms) => ms.min(SLOW_MAX_MS),
            Err(_) => return plain(StatusCode::BAD_REQUEST, "ms must be a number\n"),
        },
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    plain(StatusCode::OK, "slow done")
}

/// Answers like a legacy app that believes it is reached directly at whatever Host it was sent.
fn legacy_login(req: &Request<Incoming>) -> Resp {
    let host: &[u8] = match req.headers().get(header::HOST) {
        Some(h) => h.as_bytes(),
        None => req
            .uri()
            .authority()
            .map_or(b"localhost".as_slice(), |a| a.as_str().as_bytes()),
    };
    let domain = host_without_port(host);
    let values = [
        (header::LOCATION, [b"http://", host, b"/"].concat()),
        (
            header::SET_COOKIE,
            [b"LEGACYSESSION=s3ss10n; Domain=", domain, b"; Path=/"].concat(),
        ),
        (
            header::CONTENT_LOCATION,
            [b"http://", host, b"/legacy/login"].concat(),
        ),
        (
            HeaderName::from_static("refresh"),
            [b"5; url=http://", host, b"/"].concat(),
        ),
    ];
    let mut resp = plain(StatusCode::FOUND, "Redirecting to the legacy home page\n");
    for (name, value) in values {
        match HeaderValue::from_bytes(&value) {
            Ok(v) => {
                resp.headers_mut().append(name, v);
            }
            Err(_) => return plain(StatusCode::BAD_REQUEST, "unusable Host header\n"),
        }
    }
    resp
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
fn host_without_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket.

/// Completes the WebSocket handshake itself, then runs the session on the upgraded connection.
fn ws_notifications(req: Request<Incoming>) -> Resp {
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes());
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = match key {
        Some(key)
            if version_ok
                && has_token(header::CONNECTION, "upgrade")
                && has_token(header::UPGRADE, "websocket") =>
        {
            key
        }
        _ => return plain(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n"),
    };
    let accept = derive_accept_key(key);

    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                if let Err(e) = ws_session(ws).await {
                    tracing::debug!(error = %e, "sample EHR: websocket ended with error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "sample EHR: websocket upgrade failed"),
        }
    });

    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    set(&mut resp, header::UPGRADE, "websocket");
    set(&mut resp, header::CONNECTION, "Upgrade");
    set(&mut resp, header::SEC_WEBSOCKET_ACCEPT, &accept);
    resp
}

/// Greets, echoes, answers pings and closes, and pushes a notification every 15 s.
async fn ws_session<S>(
    mut ws: WebSocketStream<S>,
) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text("notifications: connected")).await?;
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + NOTIFY_EVERY, NOTIFY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(Message::Text(text))) => {
                    ws.send(Message::text(format!("echo: {}", text.as_str()))).await?;
                }
                Some(Ok(Message::Binary(data))) => ws.send(Message::Binary(data)).await?,
                // tungstenite queues the pong / close reply itself; flushing sends it now.
                Some(Ok(Message::Ping(_) | Message::Close(_))) => ws.flush().await?,
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
            },
            _ = tick.tick() => {
                ws.send(Message::text("notification: lab result ready for a patient")).await?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> Body {
    full(Bytes::new())
}

fn plain(status: StatusCode, text: &'static str) -> Resp {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    set(&mut resp, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    resp
}

fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => {
            let mut resp = Response::new(full(body));
            *resp.status_mut() = status;
            set(&mut resp, header::CONTENT_TYPE, "application/json");
            resp
        }
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "could not encode JSON\n"),
    }
}

/// Sets a header whose value the app itself chose; an invalid one is dropped and logged.
fn set(resp: &mut Resp, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            resp.headers_mut().insert(name, v);
        }
        Err(_) => tracing::debug!(%name, "sample EHR: dropped invalid header value"),
    }
}

/// A request header as text, lossily decoded.
fn header_text<B>(req: &Request<B>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The raw (not percent-decoded) value of the first `key=` in the query string.
fn query_param<'a, B>(req: &'a Request<B>, key: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

fn money(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "None recorded".to_owned()
    } else {
        items.join("; ")
    }
}

// ---------------------------------------------------------------------------------------------

/// Escapes text for HTML element content and quoted attributes (the sample EHR stands for
/// an app of the practice's, so it is not built with ward's templates).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
    use http::HeaderMap;
    use http_body_util::Empty;
    use std::net::SocketAddr;
    use tokio::net::TcpStream;

    async fn start() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        addr
    }

    /// One request on a fresh connection; returns status, headers and the whole body.
    async fn get(
        addr: SocketAddr,
        target: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Bytes) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .uri(target)
            .header(header::HOST, format!("ehr.test:{}", addr.port()));
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        let resp = sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, body)
    }

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[tokio::test]
    async fn index_lists_patients() {
        let addr = start().await;
        let (status, headers, body) = get(addr, "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let page = text(&body);
        for p in &PATIENTS {
            assert!(page.contains(p.name), "missing {}", p.name);
            assert!(page.contains(&format!("href=\"/patients/{}/chart\"", p.id)));
        }
        assert!(page.contains("No ward identity"));
        assert!(page.contains("Sample data — not real patients"));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }

    #[tokio::test]
    async fn identity_is_shown_escaped() {
        let addr = start().await;
        let extra = [
            ("x-ward-user", "<b>dr.lee</b>"),
            ("x-ward-roles", "clinician,officer"),
        ];
        let (_, _, body) = get(addr, "/billing", &extra).await;
        let page = text(&body);
        assert!(page.contains(
            "Signed in through ward as <strong>&lt;b&gt;dr.lee&lt;/b&gt;</strong> (roles: clinician,officer)"
        ));
        assert!(page.contains("href=\"/reports/patients.csv\""));
    }

    #[tokio::test]
    async fn chart_links_pdf() {
        let addr = start().await;
        let (status, _, body) = get(addr, "/patients/1003/chart", &[]).await;
        assert_eq!(status, StatusCode::OK);
        let page = text(&body);
        assert!(page.contains("Rosa Delgado"));
        assert!(page.contains("Sulfa drugs"));
        assert!(page.contains("href=\"/patients/1003/summary.pdf\""));
        let (status, _, _) = get(addr, "/patients/9999/chart", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn csv_export() {
        let addr = start().await;
        let (status, headers, body) = get(addr, "/reports/patients.csv", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert_eq!(
            headers[header::CONTENT_DISPOSITION],
            "attachment; filename=\"patients.csv\""
        );
        let csv = text(&body);
        assert!(csv.starts_with("id,mrn,name,"));
        assert_eq!(csv.lines().count(), PATIENTS.len() + 1);
    }

    #[test]
    fn csv_export_defuses_formulas() {
        let patient = |name: &'static str| Patient {
            id: "9",
            name,
            dob: "2000-01-01",
            mrn: "RFC-9",
            allergies: &["-", "none"],
            problems: &[],
            medications: &[],
            insurance: "@ins",
            claims: &[],
        };
        let cases = [
            (
                "=HYPERLINK(\"http://x.example\")",
                "\"'=HYPERLINK(\"\"http://x.example\"\")\"",
            ),
            ("+1+1", "'+1+1"),
            ("-1+1", "'-1+1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
        ];
        let patients = cases.map(|(name, _)| patient(name));
        let csv = patients_csv_text(&patients);
        let rows: Vec<&str> = csv.split("\r\n").skip(1).collect();
        for (i, (name, cell)) in cases.iter().enumerate() {
            assert_eq!(
                rows[i],
                format!("9,RFC-9,{cell},2000-01-01,'-; none,,,'@ins,"),
                "{name:?}"
            );
        }
        // The sample data itself has nothing to defuse: the export is as it always was.
        let real = patients_csv_text(&PATIENTS);
        assert!(!real.contains(",'"), "{real}");
    }

    #[tokio::test]
    async fn pdf_summary() {
        let addr = start().await;
        let (status, headers, body) = get(addr, "/patients/1001/summary.pdf", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
        assert_eq!(
            headers[header::CONTENT_DISPOSITION],
            "attachment; filename=\"summary-1001.pdf\""
        );
        assert!(body.starts_with(b"%PDF-"));
        assert!(body.ends_with(b"%%EOF"));
        // startxref must point at the xref keyword, and every entry at its object.
        let s = String::from_utf8_lossy(&body);
        let start: usize = s
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(body[start..].starts_with(b"xref\n0 6\n"));
        let tail = std::str::from_utf8(&body[start..]).unwrap();
        let entries: Vec<&str> = tail.lines().skip(3).take(5).collect();
        for (i, e) in entries.iter().enumerate() {
            let off: usize = e[..10].parse().unwrap();
            assert!(body[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()));
        }
        let (status, _, _) = get(addr, "/patients/nope/summary.pdf", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn stream_exact_length() {
        let addr = start().await;
        let (status, headers, body) = get(addr, "/stream?bytes=3000000", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_LENGTH], "3000000");
        assert_eq!(body.len(), 3_000_000);
        assert!(body.iter().all(|&b| b == b'a'));
        for bad in [
            "/stream?bytes=x",
            "/stream?bytes=-1",
            "/stream?bytes=1099511627777",
        ] {
            assert_eq!(
                get(addr, bad, &[]).await.0,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn slow_waits() {
        let addr = start().await;
        let t = std::time::Instant::now();
        let (status, _, body) = get(addr, "/slow?ms=50", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text(&body), "slow done");
        assert!(t.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn legacy_login_leaks_host() {
        let addr = start().await;
        let (status, h, _) = get(addr, "/legacy/login", &[]).await;
        let host = format!("ehr.test:{}", addr.port());
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(h[header::LOCATION], format!("http://{host}/").as_str());
        assert_eq!(
            h[header::SET_COOKIE],
            "LEGACYSESSION=s3ss10n; Domain=ehr.test; Path=/"
        );
        assert_eq!(
            h[header::CONTENT_LOCATION],
            format!("http://{host}/legacy/login").as_str()
        );
        assert_eq!(h["refresh"], format!("5; url=http://{host}/").as_str());
        assert_eq!(host_without_port(b"[::1]:80"), b"[::1]");
        assert_eq!(host_without_port(b"example"), b"example");
    }

    #[tokio::test]
    async fn debug_headers_reflect_request() {
        let addr = start().await;
        let (status, h, body) = get(addr, "/debug/headers?a=%2F..", &[("x-custom", "hello")]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert_eq!(h[TARGET_HEADER], "/debug/headers?a=%2F..");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["target"], "/debug/headers?a=%2F..");
        assert_eq!(v["version"], "HTTP/1.1");
        let headers = v["headers"].as_array().unwrap();
        assert_eq!(
            headers[0],
            serde_json::json!(["host", format!("ehr.test:{}", addr.port())])
        );
        assert!(headers.contains(&serde_json::json!(["x-custom", "hello"])));
    }

    #[tokio::test]
    async fn echo_counts_body() {
        let addr = start().await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::post("/echo/anything?x=1")
            .header(header::HOST, "ehr.test")
            .body(Full::new(Bytes::from(vec![7u8; 100_000])))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["target"], "/echo/anything?x=1");
        assert_eq!(v["body_len"], 100_000);
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let addr = start().await;
        let (status, h, body) = get(addr, "/nope/'x'", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(text(&body).contains("/nope/&#39;x&#39;"));
        assert_eq!(
            get(addr, "/ws/notifications", &[]).await.0,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn imaging_stand_in_answers_like_an_archive() {
        let addr = start().await;
        let (status, h, body) = get(
            addr,
            "/wado?requestType=WADO&studyUID=1&seriesUID=2&objectUID=3&contentType=application%2Fdicom",
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/dicom");
        assert_eq!(&body[128..132], b"DICM");
        let (_, h, _) = get(addr, "/wado?requestType=WADO&objectUID=3", &[]).await;
        assert_eq!(h[header::CONTENT_TYPE], "image/jpeg");
        let (_, h, body) = get(addr, &format!("/dicomweb/studies/{STUDY_UID}"), &[]).await;
        assert_eq!(
            h[header::CONTENT_TYPE],
            "multipart/related; type=\"application/dicom\"; boundary=dicom-part-boundary"
        );
        assert!(body.starts_with(b"--dicom-part-boundary\r\n"));
        let (_, h, _) = get(
            addr,
            "/dicomweb/studies/1/series/2/instances/3/frames/1",
            &[],
        )
        .await;
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("multipart/related; type=application/octet-stream;")
        );
        // Links from Forwarded when there is one, else from Host over http.
        let (_, h, body) = get(addr, "/dicomweb/studies", &[]).await;
        assert_eq!(h[header::CONTENT_TYPE], "application/dicom+json");
        let port = addr.port();
        assert!(text(&body).contains(&format!("http://ehr.test:{port}/dicomweb/studies/")));
        let (_, _, body) = get(
            addr,
            "/dicomweb/studies",
            &[(
                "forwarded",
                "for=192.0.2.1;proto=https;host=\"pacs.example:8443\"",
            )],
        )
        .await;
        assert!(text(&body).contains("https://pacs.example:8443/dicomweb/studies/"));
        let (status, h, _) = get(addr, "/challenge", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(h.contains_key(header::WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn logo_is_png() {
        let addr = start().await;
        let (status, h, body) = get(addr, "/logo.png", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "image/png");
        assert!(body.starts_with(b"\x89PNG\r\n\x1a\n"));
    }

    #[tokio::test]
    async fn websocket_echo() {
        let addr = start().await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let url = format!("ws://127.0.0.1:{}/ws/notifications", addr.port());
        let (mut ws, resp) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        let first = ws.next().await.unwrap().unwrap();
        assert_eq!(first, Message::text("notifications: connected"));
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("echo: hi"));
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(vec![1u8, 2, 3])
        );
        ws.close(None).await.unwrap();
        // The server answers the close and the stream then ends.
        while let Some(Ok(_)) = ws.next().await {}
    }
}
