// Stand-in for the Next.js ui: answers every path on 3010 with a small JSON document that
// names minio's internal address, so nginx's sub_filter rewrite can be seen.
const http = require("http");
http
  .createServer((request, response) => {
    const body = JSON.stringify({
      role: "ui",
      path: request.url,
      backend: process.env.BACKEND_URL || null,
      recording: "http://localhost:9000/voice-audio/sample.wav",
    });
    response.writeHead(200, { "Content-Type": "application/json" });
    response.end(body);
  })
  .listen(3010, "0.0.0.0");
