/** The kmip-edge client's interop suite (the one PyKMIP passes) against the development server. */
import { clientInteropSuite } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';

clientInteropSuite('development server', () => startDevServer(), /kmip-edge development server/);
