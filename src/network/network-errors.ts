import { ArcaError } from '../errors.js';

/** 503: a resource ran out (no free address, no free pool). Docker's errdefs "unavailable". */
export class Unavailable extends ArcaError {
  override readonly status = 503;
}
