// Exit once stdout and stderr have drained. Both executables exit explicitly (so no stray handle keeps them alive),
// but into a pipe writes are asynchronous: exiting at once cut piped output (`station records --json | jq`).

/** Resolves when everything written to `stream` so far has been handed to the OS (or the stream is gone). */
function drained(stream) {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    stream.once('error', resolve);
    stream.write('', () => resolve());
  });
}

/** Exit with `code` after stdout and stderr drained. */
export async function exitWhenDrained(code) {
  await drained(process.stdout);
  await drained(process.stderr);
  process.exit(code);
}
