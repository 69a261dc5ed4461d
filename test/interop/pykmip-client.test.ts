/** The kmip-edge client's interop suite against a real PyKMIP 0.10 server. */
import { clientInteropSuite } from '../helpers/client-interop-suite.ts';
import { startPyKmip } from '../helpers/pykmip.ts';

clientInteropSuite('PyKMIP', startPyKmip, /PyKMIP/);
