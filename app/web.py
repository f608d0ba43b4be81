"""The web page at ``/``: pick or drop a photo, watch progress (SSE), compare results, re-render the toon
strength, download. Plain HTML and a little JS, served by the app."""
from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Toonify</title>
<style>
 body{font-family:system-ui,sans-serif;margin:0;background:#f6f5f2;color:#222}
 header{padding:1rem 2rem;background:#2b2d42;color:#fff} h1{margin:0;font-size:1.4rem}
 main{padding:1.5rem 2rem;max-width:1100px}
 #drop{border:2px dashed #8d99ae;border-radius:12px;padding:2rem;text-align:center;background:#fff;cursor:pointer}
 #drop.over{background:#edf2f4}
 .row{display:flex;gap:1rem;flex-wrap:wrap;margin-top:1rem}
 figure{margin:0;background:#fff;padding:.5rem;border-radius:8px;box-shadow:0 1px 3px #0002}
 figure img{display:block;width:240px;height:240px;object-fit:contain;image-rendering:auto}
 figcaption{font-size:.85rem;margin-top:.3rem;display:flex;justify-content:space-between}
 progress{width:100%;height:1.2rem} #status{margin:.5rem 0;min-height:1.2em} .error{color:#b00020}
 label{margin-right:1rem}
</style></head>
<body><header><h1>Toonify</h1></header><main>
<div id="drop" tabindex="0">Drop a photo here, or click to choose one
 <input id="file" type="file" accept="image/*" hidden></div>
<div class="row"><label>Steps <input id="steps" type="number" min="1" max="2000" value="500"></label>
 <label>API key <input id="key" type="password" placeholder="if the server needs one"></label></div>
<progress id="bar" max="1" value="0"></progress><div id="status">Choose a photo to begin.</div>
<div class="row" id="results"></div>
<div id="strengthRow" hidden><label>Toon strength <input id="strength" type="range" min="0" max="1" step="0.05"
 value="1"></label><span id="strengthValue">1.00</span></div>
</main>
<script>
const $ = (id) => document.getElementById(id);
let job = null;
function headers() { const k = $("key").value; return k ? {"Authorization": "Bearer " + k} : {}; }
function figure(id, title, src) {
  let f = $(id);
  if (!f) { f = document.createElement("figure"); f.id = id;
    f.innerHTML = '<img alt=""><figcaption><span></span><a download>download</a></figcaption>';
    $("results").appendChild(f); }
  f.querySelector("img").src = src; f.querySelector("span").textContent = title;
  const a = f.querySelector("a"); a.href = src; a.download = id + ".png";
}
function say(text, isError) { $("status").textContent = text; $("status").className = isError ? "error" : ""; }
async function send(file) {
  $("results").innerHTML = ""; $("strengthRow").hidden = true; $("bar").value = 0;
  figure("original", "original", URL.createObjectURL(file));
  const body = new FormData(); body.append("image", file); body.append("steps", $("steps").value);
  say("Uploading…");
  const r = await fetch("/toonify", {method: "POST", body, headers: Object.assign({"Prefer": "respond-async"},
                        headers())});
  const data = await r.json();
  if (!r.ok) { say(data.message || "the server refused the photo", true); return; }
  job = data; follow(data.links.events);
}
function follow(eventsLink) {  // links come signed from the server: the key never goes into a URL
  const events = new EventSource(eventsLink);
  events.addEventListener("job", (e) => {
    const j = JSON.parse(e.data); job = j;
    $("bar").value = j.status === "succeeded" ? 1 : j.progress;
    const eta = j.eta_s ? " — about " + Math.round(j.eta_s) + " s left" : "";
    say(j.status === "queued" ? "Queued (position " + j.queue_position + ")" + eta :
        j.stage + (j.total ? " " + j.step + "/" + j.total : "") + eta);
    if (j.status === "succeeded") { events.close(); show(j); }
    if (j.status === "failed" || j.status === "cancelled") { events.close();
      say(j.error ? j.error.message : "the job was " + j.status, true); }
  });
}
function show(j) {
  const first = j.links.results[0];
  figure("aligned", "aligned", first.aligned);
  figure("toon", "toon", first.toon);
  figure("paste", "pasted", j.links.paste);
  say("Done: " + j.faces.length + " face(s)."); $("strengthRow").hidden = false;
}
$("strength").addEventListener("change", async () => {
  const s = Number($("strength").value).toFixed(2); $("strengthValue").textContent = s;
  const r = await fetch("/jobs/" + job.id + "/render?strength=" + s, {method: "POST", headers: headers()});
  if (!r.ok) { say((await r.json()).message, true); return; }
  figure("toon", "toon at " + s, URL.createObjectURL(await r.blob()));
});
const drop = $("drop");
drop.addEventListener("click", () => $("file").click());
$("file").addEventListener("change", () => { if ($("file").files[0]) send($("file").files[0]); });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); });
</script></body></html>
"""
