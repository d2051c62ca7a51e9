/** arca's own release, shown by `/version` and `arca version`. */
export const ARCA_VERSION = '0.1.0';
