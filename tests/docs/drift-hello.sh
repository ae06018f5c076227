#!/bin/sh
# The drift repair the README shows: run examples/hello.yaml, break its file three
# ways, stop. Run by tests/examples.rs from the repository's root with `homeostat`
# first in PATH; the README's log lines must be among what this prints.
set -e
rm -rf /tmp/homeostat-hello
homeostat run examples/hello.yaml --no-cache 2>&1 &
pid=$!
until [ -f /tmp/homeostat-hello/motd ]; do sleep 0.1; done
sleep 0.5
# Replaced whole (as an editor saves), so the change is seen as one: a truncate and a
# write can be seen as two under load ("0 bytes -> ...").
echo broken > /tmp/homeostat-hello-broken
mv /tmp/homeostat-hello-broken /tmp/homeostat-hello/motd; sleep 0.5
chmod 600 /tmp/homeostat-hello/motd; sleep 0.5
rm /tmp/homeostat-hello/motd; sleep 0.5
kill -TERM "$pid"
wait "$pid"
