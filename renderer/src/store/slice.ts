/**
 * A minimal slice store: one slice per feature, state changed only by actions named as events
 * (`boardAttached`, `provisioningFailed`), read in components with `useSlice` (useSyncExternalStore).
 */
import { useSyncExternalStore } from 'react';

type Handlers<S> = Record<string, (state: S, payload: never) => S>;
type Actions<S, H extends Handlers<S>> = {
  readonly [K in keyof H]: Parameters<H[K]>[1] extends undefined ? () => void : (payload: Parameters<H[K]>[1]) => void;
};

export interface Slice<S, H extends Handlers<S>> {
  readonly name: string;
  get(): S;
  subscribe(listener: () => void): () => void;
  readonly actions: Actions<S, H>;
  /** Last actions dispatched (newest last, at most 50): for debugging and tests. */
  readonly history: string[];
}

/** Creates a slice with its event-named actions. */
export function createSlice<S, H extends Handlers<S>>(name: string, initial: S, handlers: H): Slice<S, H> {
  let state = initial;
  const listeners = new Set<() => void>();
  const history: string[] = [];
  const actions: Record<string, (payload?: unknown) => void> = {};
  for (const [event, fn] of Object.entries(handlers)) {
    actions[event] = (payload?: unknown) => {
      const next = (fn as (s: S, p: unknown) => S)(state, payload);
      history.push(`${name}/${event}`);
      if (history.length > 50) history.shift();
      if (next === state) return;
      state = next;
      for (const l of [...listeners]) l();
    };
  }
  return {
    name,
    get: () => state,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    actions: actions as Actions<S, H>,
    history,
  };
}

/** Reads a slice (optionally a selected part) in a component. */
export function useSlice<S, H extends Handlers<S>, T = S>(slice: Slice<S, H>, select?: (s: S) => T): T {
  return useSyncExternalStore(slice.subscribe, () => (select ? select(slice.get()) : (slice.get() as unknown as T)));
}
