"""`edgellm serve`: an OpenAI-compatible HTTP server in front of one device or CPU backend.

target.py opens what is served (a compiled project on a device, or a checkpoint on a CPU backend);
schemas.py checks request bodies; worker.py runs one request at a time from a bounded queue;
textstream.py turns tokens into text deltas (stop strings held back); speculation.py what
`--speculate` reports (usage, /health); app.py is the Starlette app;
server.py binds the socket and runs uvicorn. Only app.py and server.py import Starlette / uvicorn
(the optional extra `pip install "edgellm[serve]"`).
"""
