/** An incremental Server-Sent Events parser: feed it bytes, it calls back with each event's data. */
export class SseParser {
  private buf = '';
  private data: string[] = [];
  private event = '';
  private readonly decoder = new TextDecoder();

  constructor(private readonly onEvent: (data: string, event: string) => void) {}

  push(chunk: Uint8Array | string): void {
    this.buf += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = this.buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buf.slice(0, nl);
      const width = this.buf[nl] === '\r' && this.buf[nl + 1] === '\n' ? 2 : 1;
      // A lone '\r' at the end of the buffer may be the first half of '\r\n': wait for more.
      if (this.buf[nl] === '\r' && nl + 1 === this.buf.length) break;
      this.buf = this.buf.slice(nl + width);
      this.line(line);
    }
  }

  end(): void {
    if (this.buf) {
      this.line(this.buf);
      this.buf = '';
    }
    this.dispatch();
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
  }

  private dispatch(): void {
    if (this.data.length) this.onEvent(this.data.join('\n'), this.event);
    this.data = [];
    this.event = '';
  }
}
