// Stand-in for the Next.js standalone server.js of dograhai/dograh-ui (test only).
//
// Like Next's standalone server it forces NODE_ENV=production and listens on
// parseInt(process.env.PORT) || 3000, bound to process.env.HOSTNAME || '0.0.0.0'. Docker sets
// HOSTNAME to the container id, which resolves to the container's own network address: so
// without HOSTNAME=0.0.0.0 nothing answers on 127.0.0.1 inside the container.
//
// Like Dograh's middleware, each request first fetches ${BACKEND_URL:-http://api:8000}/api/v1/health
// and tolerates failure (here with a 2 s limit). Every path is answered with a small JSON
// document; its `recording` field names minio's internal address so that nginx's rewrite of
// it can be seen.
process.env.NODE_ENV = "production";

const http = require("http");

const hostname = process.env.HOSTNAME || "0.0.0.0";
const port = parseInt(process.env.PORT, 10) || 3000;
const backend = process.env.BACKEND_URL || "http://api:8000";

async function backendHealth() {
  try {
    const response = await fetch(`${backend}/api/v1/health`, {
      signal: AbortSignal.timeout(2000),
    });
    return response.status;
  } catch (error) {
    const cause = error.cause && (error.cause.code || error.cause.message);
    return `${error.name}: ${cause || error.message}`;
  }
}

const server = http.createServer(async (request, response) => {
  const body = JSON.stringify({
    role: "ui",
    path: request.url,
    backend,
    backend_health: await backendHealth(),
    recording: "http://localhost:9000/voice-audio/sample.wav",
  });
  response.writeHead(200, { "Content-Type": "application/json" });
  response.end(body);
});

server.listen(port, hostname, () => {
  console.log(`ui stand-in listening on http://${hostname}:${port} (NODE_ENV=${process.env.NODE_ENV})`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
