/**
 * Error categories, after moby's errdefs. Code below the API raises one of these; the HTTP
 * status is decided once, in {@link toHttpStatus}, at the API edge.
 */
export class ArcaError extends Error {
  readonly status: number = 500;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** 400: the request itself is wrong. */
export class InvalidParameter extends ArcaError {
  override readonly status = 400;
}
/** 404: the named object does not exist. */
export class NotFound extends ArcaError {
  override readonly status = 404;
}
/** 409: the object exists but is in the wrong state, or the name is taken. */
export class Conflict extends ArcaError {
  override readonly status = 409;
}
/** 403: the operation is never allowed on this object (predefined network, ...). */
export class Forbidden extends ArcaError {
  override readonly status = 403;
}
/** 304: nothing to do (start of a running container). */
export class NotModified extends ArcaError {
  override readonly status = 304;
}
/** 501: a feature arca does not offer. */
export class NotImplemented extends ArcaError {
  override readonly status = 501;
}
/** 503: the service this needs is not available here (swarm endpoints on a node outside a swarm). */
export class Unavailable extends ArcaError {
  override readonly status = 503;
}
/** 500: the system failed (a command, the kernel, the disk). */
export class SystemError extends ArcaError {
  override readonly status = 500;
}

export function toHttpStatus(err: unknown): number {
  if (err instanceof ArcaError) return err.status;
  if (err instanceof SyntaxError) return 400;
  return 500;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
