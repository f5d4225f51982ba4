#!/usr/bin/env node
// The `nfvisor` executable: everything else is in program.ts, so tests can run commands in process.
import { main } from './program.js';

process.exitCode = await main(process.argv.slice(2));
