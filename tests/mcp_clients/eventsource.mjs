// A browser EventSource (the `eventsource` package follows the WHATWG semantics) on a finished job's stream:
// it must receive the final job-update once, with its id, and stop (204 on the reconnect) instead of
// reconnecting every few seconds for ever.   node eventsource.mjs URL_OF_THE_JOB_STREAM
import { EventSource } from "eventsource";

const url = process.argv[2];
const events = [];
let opens = 0;
const es = new EventSource(url);
es.onopen = () => { opens += 1; };
es.addEventListener("job-update", (e) => events.push({ id: e.lastEventId, status: JSON.parse(e.data).status }));
let timer;
const done = await new Promise((resolve) => {
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) resolve("closed"); };
  timer = setTimeout(() => resolve("still open"), 8000);  // 3 s reconnect delay, then the 204
});
clearTimeout(timer);
es.close();
console.log(JSON.stringify({ done, opens, events }));
