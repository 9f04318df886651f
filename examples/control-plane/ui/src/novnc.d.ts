/** The part of noVNC's RFB client (@novnc/novnc, which ships no types) that the console page uses. */
declare module '@novnc/novnc' {
  export default class RFB extends EventTarget {
    constructor(target: HTMLElement, urlOrChannel: string | WebSocket, options?: { wsProtocols?: string[] });
    scaleViewport: boolean;
    disconnect(): void;
  }
}
