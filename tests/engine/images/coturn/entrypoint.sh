#!/bin/bash
# The contract of coturn/coturn's image entrypoint (docker/coturn/*/rootfs/.../
# docker-entrypoint.sh): arguments that start with '-' are options of turnserver, which is put
# in front of them; and the whole command line is expanded once more by the shell before it
# runs (so `$VAR` in an argument is replaced from the environment, and a command such as
# `sh -c '...'` does not survive as one argument).
case "${1:-}" in -*) set -- turnserver "$@" ;; esac
eval "set -- $*"
exec "$@"
