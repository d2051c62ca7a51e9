import type { ProgressStream } from '../images/progress-stream.js';

const STEP = /^(?:\[\d+\/\d+\] )?STEP \d+\/\d+: (.*)$/;
const USING_CACHE = /^--> Using cache ([0-9a-f]{12,64})$/;
const RESULT = /^--> ([0-9a-f]{7,64})$/;
/** buildah's own chatter that has no counterpart in Docker's classic builder output. */
const DROPPED = [
  /^COMMIT\b/,
  /^Getting image source signatures$/,
  /^Copying (blob|config) /,
  /^Writing manifest to image destination$/,
  /^Storing signatures$/,
  /^Successfully tagged /,
  /^(sha256:)?[0-9a-f]{64}$/,
  /^Error: /,
  /^time="[^"]*" level=/,
  /^WARN\[\d+\]/,
  /^--> [0-9a-f]+$/,
];

/**
 * Turns buildah's progress into Docker's classic builder stream: `Step n/m : INSTRUCTION`,
 * ` ---> Using cache`, ` ---> <id>`, the RUN steps' output as it comes. `q=1` shows nothing but the
 * final id. Also remembers the instruction being run, for Docker's error texts.
 */
export class BuildOutput {
  private step = 0;
  /** The instruction of the step running now, as written in the Dockerfile. */
  current = '';
  /** In buildah's own LABEL step (for `--label`), which Docker's output does not show. */
  private inLabelStep = false;
  /**
   * The last step's image id, sent by {@link finish}: when buildah's LABEL step follows, its
   * image (the build's result) is the one Docker's last " ---> <id>" names.
   */
  private lastId?: string;
  /** The step whose image id was given: buildah follows a cache hit's full id with the same id, short. */
  private idGiven = -1;
  /** buildah's STEP lines seen, its hidden LABEL step's included. */
  private stepLines = 0;

  constructor(
    private readonly out: ProgressStream,
    private readonly quiet: boolean,
    private readonly totalSteps: number,
    /** Short ids of the images stages start from, by the name in their FROM. */
    private readonly baseIds: Map<string, string>,
    /** The caller already sent the first step's line (before fetching its base). */
    private readonly firstAnnounced = false,
  ) {}

  private send(text: string): void {
    if (!this.quiet) this.out.stream(text);
  }

  /** One line buildah printed; `stderr` lines of a step's own output are red, as Docker's classic builder sends them. */
  line(l: string, stream: 'stdout' | 'stderr' = 'stdout'): void {
    const step = STEP.exec(l);
    if (step) {
      this.stepLines++;
      // buildah applies `labels` as one more step of its own; Docker's builder shows no such step.
      if (this.step >= this.totalSteps && /^LABEL /.test(step[1]!)) {
        this.inLabelStep = true;
        return;
      }
      this.current = step[1]!;
      this.step++;
      if (this.step > 1 || !this.firstAnnounced) this.send(`Step ${this.step}/${Math.max(this.totalSteps, this.step)} : ${this.current}\n`);
      const from = /^FROM\s+(?:--platform=\S+\s+)?(\S+)/i.exec(this.current);
      const base = from ? this.baseIds.get(from[1]!) : undefined;
      if (base) this.send(` ---> ${base}\n`);
      return;
    }
    const cached = USING_CACHE.exec(l);
    if (cached) {
      if (!this.inLabelStep) this.send(' ---> Using cache\n');
      this.stepId(cached[1]!);
      return;
    }
    const result = RESULT.exec(l);
    if (result) {
      this.stepId(result[1]!);
      return;
    }
    if (DROPPED.some((re) => re.test(l))) return;
    this.send(stream === 'stderr' ? `\u001b[91m${l}\n\u001b[0m` : `${l}\n`);
  }

  private stepId(id: string): void {
    if (this.idGiven === this.stepLines) return;
    this.idGiven = this.stepLines;
    if (this.step >= this.totalSteps) this.lastId = id.slice(0, 12);
    else this.send(` ---> ${id.slice(0, 12)}\n`);
  }

  /** After a build that succeeded: the last step's " ---> <id>". */
  finish(): void {
    if (this.lastId) this.send(` ---> ${this.lastId}\n`);
    this.lastId = undefined;
  }

  /** Docker's wording of a failed build, from buildah's message and the step that failed. */
  errorText(buildahMessage: string): string {
    const runFailed = /^building at STEP "RUN .*": while running runtime: exit status (\d+)$/.exec(buildahMessage);
    if (runFailed) {
      const args = this.current.replace(/^RUN\s+/i, '');
      let cmd = `/bin/sh -c ${args}`;
      if (args.startsWith('[')) {
        try {
          const argv = JSON.parse(args) as unknown;
          if (Array.isArray(argv)) cmd = argv.map(String).join(' ');
        } catch {
          /* not JSON: shell form after all */
        }
      }
      return `The command '${cmd}' returned a non-zero code: ${runFailed[1]}`;
    }
    const missing = /copier: stat: "\/?([^"]*)": no such file or directory/.exec(buildahMessage);
    if (missing) {
      return `COPY failed: file not found in build context or excluded by .dockerignore: stat ${missing[1]}: file does not exist`;
    }
    return buildahMessage.replace(/^building at STEP "[^"]*": /, '');
  }
}
