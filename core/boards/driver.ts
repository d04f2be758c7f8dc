/**
 * The board-driver interface every driver in core/boards/ implements (docs/architecture.md "Board drivers").
 *
 * Defined beside the flow that drives it (core/provisioning/driver.ts, the flow's port for a board family, as
 * `Store` is its port for the database): the flow then needs nothing from core/boards/, and core/boards/ imports
 * core/provisioning/ only, one way. This file is the drivers' import path.
 */
export * from '../provisioning/driver.js';
