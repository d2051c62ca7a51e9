/** The `bridge` driver passes the shared driver compliance suite. */
import { runDriverCompliance } from './driver-compliance.js';

runDriverCompliance('bridge', { hostLinksOf: (id) => [`br-${id.slice(0, 12)}`] });
