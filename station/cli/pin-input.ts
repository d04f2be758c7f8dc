/**
 * PINs for the `station` commands, from standard input: all of a piped stdin is read once (a PIN per line); at a
 * terminal each line is read with echo off, so a PIN never shows on the screen or in the scrollback. PINs come from
 * the environment, a 0600 file or here, never from the command line (it would land in the shell history and the
 * process list). Imports core/ and native/data-dir.ts.
 */
import { ok, type Result } from '../../core/result.js';
import { readPrivateFile } from '../../native/data-dir.js';

let stdinLines: string[] | null = null;

/** The next line of standard input (all of it is read once: a PIN per line); from a terminal, not echoed. */
export async function readStdin(prompt = 'PIN (4 to 12 digits), then Enter: '): Promise<string> {
  if (process.stdin.isTTY) return readTtyLine(prompt);
  if (!stdinLines) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
    stdinLines = Buffer.concat(chunks).toString('utf8').split('\n');
  }
  return (stdinLines.shift() ?? '').trim();
}

/** What was typed after the Enter that ended the previous terminal line (the next prompt's input). */
let ttyRest = '';

/**
 * One line typed at the terminal with echo off (raw mode): a PIN must not appear on the screen or in the scrollback.
 * Enter ends it, Backspace erases, Ctrl-D gives up (an empty answer), Ctrl-C interrupts as usual. stdin is paused, not closed, after
 * it, so a second prompt (the supervisor's PIN) reads the next line.
 */
function readTtyLine(prompt: string): Promise<string> {
  const tty = process.stdin;
  // Echo off BEFORE the prompt shows: what is typed as soon as it appears must not be echoed either.
  tty.setRawMode(true);
  process.stderr.write(prompt);
  return new Promise((resolve) => {
    let line = '';
    const take = (s: string): boolean => {
      for (let i = 0; i < s.length; i++) {
        const ch = s[i]!;
        if (ch === '\r' || ch === '\n') {
          ttyRest = s.slice(i + (ch === '\r' && s[i + 1] === '\n' ? 2 : 1));
          finish(line.trim());
          return true;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          ttyRest = '';
          finish('');
          if (ch === '\u0003') process.kill(process.pid, 'SIGINT'); // raw mode: Ctrl-C raises no signal itself
          return true;
        }
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
      return false;
    };
    const onData = (b: Buffer) => void take(b.toString('utf8'));
    const onEnd = () => finish(''); // the terminal went away before Enter
    const finish = (v: string) => {
      tty.off('data', onData);
      tty.off('end', onEnd);
      tty.off('error', onEnd);
      if (tty.destroyed) return resolve(v);
      tty.setRawMode(false);
      tty.pause();
      process.stderr.write('\n');
      resolve(v);
    };
    const rest = ttyRest;
    ttyRest = '';
    if (take(rest)) return;
    tty.on('data', onData);
    tty.once('end', onEnd);
    tty.once('error', onEnd);
    tty.resume();
  });
}

/**
 * A PIN: the first line of `file` (a private regular file of this user, opened once without following a link), else
 * the environment variable `env`, else the next line of stdin (prompted with `prompt`, not echoed at a terminal).
 */
export async function readSecret(file: string | undefined, env: string, prompt: string): Promise<Result<string>> {
  if (file) {
    const f = readPrivateFile(file, 'INPUT_INVALID');
    return f.ok ? ok(f.value.split('\n')[0]!.trim()) : f;
  }
  const v = process.env[env];
  return ok(v !== undefined ? v.trim() : await readStdin(prompt));
}
