package dashboard

import "html/template"

// Badge colours. They are Go constants, not just CSS literals, so the
// screenshot test can look for the exact pixels the browser painted.
const (
	colorOK   = "#1a7f37" // attested, confirmed
	colorWarn = "#f2a60c" // expired, warnings, emulated chain
	colorOff  = "#6e7781" // offline, planned, unknown
	colorBad  = "#cf222e" // SIMULATED evidence, errors, expired batches
	colorInfo = "#0969da" // in flight: signed, sent; lite chain
)

// stylesheet is inlined into the page: the CSP forbids loading anything, and
// one file is easier to save or mail. System fonts only, no web fonts.
const stylesheet = `
:root{--ok:` + colorOK + `;--warn:` + colorWarn + `;--off:` + colorOff + `;--bad:` + colorBad + `;--info:` + colorInfo + `;
--bg:#f3f5f8;--panel:#fff;--line:#d8dee4;--text:#1f2328;--muted:#636c76;--head:#161b22}
*{box-sizing:border-box}
html,body{margin:0;background:var(--bg);color:var(--text)}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.mono,td.num{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-variant-numeric:tabular-nums}
.muted{color:var(--muted)}
.small{font-size:12px}
header.top{background:var(--head);color:#f0f3f6;padding:16px 24px;display:flex;justify-content:space-between;align-items:center;gap:24px;flex-wrap:wrap}
header.top h1{margin:0;font-size:20px;font-weight:600;letter-spacing:.2px}
header.top .muted{color:#9ea7b3;margin:2px 0 0;font-size:12px}
.wallet{text-align:right}
.wallet .label{font-size:12px;color:#9ea7b3;text-transform:uppercase;letter-spacing:.6px}
.wallet .balance{font-size:20px;font-weight:600;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
.wallet .addr{font-size:12px;color:#c9d1d9;word-break:break-all}
main{padding:16px 24px 32px;max-width:1400px;margin:0 auto}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:12px;margin-bottom:16px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.card .label{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.6px}
.card .value{font-size:18px;font-weight:600;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;white-space:nowrap}
.card .sub{font-size:12px;color:var(--muted)}
section.panel{background:var(--panel);border:1px solid var(--line);border-radius:8px;margin-bottom:16px;overflow:hidden}
section.panel h2{margin:0;padding:10px 14px;font-size:15px;font-weight:600;border-bottom:1px solid var(--line);background:#f6f8fa}
.count{display:inline-block;min-width:20px;padding:0 6px;margin-left:4px;border-radius:10px;background:#e1e6eb;color:var(--muted);font-size:12px;text-align:center;font-weight:500}
table{width:100%;border-collapse:collapse;font-size:13px}
th{text-align:left;font-weight:600;color:var(--muted);font-size:12px;padding:6px 7px;border-bottom:1px solid var(--line);white-space:nowrap}
td{padding:7px 7px;border-bottom:1px solid #eef1f4;vertical-align:baseline}
tr:last-child td{border-bottom:0}
th:first-child,td:first-child{padding-left:14px}
th:last-child,td:last-child{padding-right:14px}
th.num,td.num{text-align:right;white-space:nowrap}
td.num{font-size:12px}
.scroll{overflow-x:auto}
td.nowrap,.nowrap{white-space:nowrap}
.id{font-weight:600}
.err{color:var(--bad)}
.empty{margin:0;padding:14px;color:var(--muted);font-style:italic}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:11px;font-weight:600;line-height:18px;text-transform:uppercase;letter-spacing:.4px;color:#fff;white-space:nowrap}
.badge.ok{background:var(--ok)}
.badge.warn{background:var(--warn);color:#3d2a00}
.badge.off{background:var(--off)}
.badge.bad{background:var(--bad)}
.badge.info{background:var(--info)}
.chip{display:inline-block;white-space:nowrap;margin:0 4px 2px 0;padding:0 6px;border:1px solid var(--line);border-radius:4px;background:#f6f8fa;font-size:12px}
.kind{font-weight:600;text-transform:uppercase;font-size:12px}
.rep{display:flex;align-items:center;gap:6px;white-space:nowrap}
.bar{display:inline-block;width:56px;height:6px;border-radius:3px;background:#e1e6eb;overflow:hidden}
.bar span{display:block;height:100%;background:#57606a}
footer{color:var(--muted);font-size:12px;text-align:center;padding-bottom:16px}
`

func css() template.CSS { return template.CSS(stylesheet) }
