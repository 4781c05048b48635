"""The local engine: llama.cpp in a supervised process of its own, shared by every client.

- `protocol`: the framed messages between clients and the engine;
- `runtime`: where an engine lives (socket, lock, status, log), its key, bad models;
- `supervisor`: the small process that owns the socket and restarts the engine;
- `worker`, `daemon`, `session`, `jobs`, `slots`, `model`: the engine process (the model,
  per-client KV slots, the job queue, one thread per client connection);
- `connection`, `client`, `notices`: attaching to (or starting) the engine, and the backend
  the server uses (`EngineBackend`, a `backends.local.LocalBackend`);
- `status`: what `ninetyten engine status` and `ninetyten doctor` show.

Nothing is imported here: the supervisor must stay small, and must never load llama.cpp.
"""
